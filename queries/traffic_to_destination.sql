-- title: Traffic to a destination address
-- question: Who sent traffic to one destination address, and was it allowed?
-- param: dst_addr = 10.0.0.1 : the destination address
-- source: VPC console Athena integration, VpcFlowLogsTrafficToDstAddr
SELECT srcaddr, dstport, protocol, action, count(*) AS flows, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE dstaddr = '${dst_addr}'
GROUP BY srcaddr, dstport, protocol, action
ORDER BY bytes DESC
LIMIT 100;
