-- title: Bytes from a subnet, by destination
-- question: Where did addresses starting with a prefix (a subnet such as 192.0.2.) send the most bytes?
-- param: src_prefix = 10.0. : the first octets of the source addresses, with the trailing dot
-- source: CloudWatch Logs Insights example: filter isIpv4InSubnet(srcAddr, "192.0.2.0/24") | stats sum(bytes) by dstAddr
SELECT dstaddr, sum(bytes) AS bytes_transferred
FROM vpc_flow_logs
WHERE srcaddr LIKE '${src_prefix}%'
GROUP BY dstaddr
ORDER BY bytes_transferred DESC
LIMIT 15;
