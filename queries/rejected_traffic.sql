-- title: Rejected traffic
-- question: Which sources had the most traffic rejected, on which ports?
-- source: VPC console Athena integration, VpcFlowLogsRejectedTraffic
SELECT srcaddr, dstaddr, dstport, protocol, count(*) AS rejections, sum(packets) AS packets
FROM vpc_flow_logs
WHERE action = 'REJECT'
GROUP BY srcaddr, dstaddr, dstport, protocol
ORDER BY rejections DESC
LIMIT 100;
