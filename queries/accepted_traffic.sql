-- title: Accepted traffic
-- question: Which flows did security groups and network ACLs accept, most bytes first?
-- source: VPC console Athena integration, VpcFlowLogsAcceptedTraffic
SELECT srcaddr, dstaddr, srcport, dstport, protocol, sum(packets) AS packets, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE action = 'ACCEPT'
GROUP BY srcaddr, dstaddr, srcport, dstport, protocol
ORDER BY bytes DESC
LIMIT 100;
