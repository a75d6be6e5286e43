-- title: Top talkers by bytes
-- question: Which 50 source addresses sent the most bytes?
-- source: VPC console Athena integration, VpcFlowLogsTopTalkers
SELECT srcaddr, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM vpc_flow_logs
WHERE log_status = 'OK'
GROUP BY srcaddr
ORDER BY bytes DESC
LIMIT 50;
