-- title: Top TCP traffic
-- question: Which TCP source and destination pairs moved the most bytes?
-- source: VPC console Athena integration, VpcFlowLogsTopTCPTraffic
SELECT srcaddr, dstaddr, dstport, sum(bytes) AS bytes, sum(packets) AS packets
FROM vpc_flow_logs
WHERE protocol = 6
GROUP BY srcaddr, dstaddr, dstport
ORDER BY bytes DESC
LIMIT 50;
