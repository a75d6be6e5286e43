-- title: NAT gateway top contributors
-- question: Which instances in the VPC send the most bytes through a NAT gateway, and to or from where?
-- param: nat_addr = 10.0.0.220 : the NAT gateway's private address
-- param: vpc_prefix = 10.0. : the first octets of the VPC CIDR, with the trailing dot
-- source: CloudWatch Logs Insights NAT-gateway example (dstAddr like NAT and srcAddr like VPC, or the reverse)
SELECT srcaddr, dstaddr, sum(bytes) AS bytes_transferred
FROM vpc_flow_logs
WHERE (dstaddr = '${nat_addr}' AND srcaddr LIKE '${vpc_prefix}%')
   OR (srcaddr = '${nat_addr}' AND dstaddr LIKE '${vpc_prefix}%')
GROUP BY srcaddr, dstaddr
ORDER BY bytes_transferred DESC
LIMIT 10;
