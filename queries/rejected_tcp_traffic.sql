-- title: Rejected TCP traffic
-- question: Which TCP connections were rejected, and how often?
-- source: VPC console Athena integration, VpcFlowLogsRejectedTCPTraffic
SELECT srcaddr, dstaddr, dstport, interface_id, count(*) AS rejections
FROM vpc_flow_logs
WHERE action = 'REJECT' AND protocol = 6
GROUP BY srcaddr, dstaddr, dstport, interface_id
ORDER BY rejections DESC
LIMIT 100;
