-- title: NAT gateway downloads
-- question: Which traffic came from the internet into the VPC through a NAT gateway (downloads)?
-- param: nat_addr = 10.0.0.220 : the NAT gateway's private address
-- param: vpc_prefix = 10.0. : the first octets of the VPC CIDR, with the trailing dot
-- source: CloudWatch Logs Insights NAT-gateway example: dstAddr like NAT and srcAddr not like VPC
SELECT srcaddr, dstaddr, sum(bytes) AS bytes_transferred
FROM vpc_flow_logs
WHERE dstaddr = '${nat_addr}' AND srcaddr NOT LIKE '${vpc_prefix}%'
GROUP BY srcaddr, dstaddr
ORDER BY bytes_transferred DESC
LIMIT 10;
