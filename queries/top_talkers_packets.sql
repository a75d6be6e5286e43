-- title: Top talkers by packets
-- question: Which 50 source addresses sent the most packets?
-- source: VPC console Athena integration, VpcFlowLogsTopTalkersPacketLevel
SELECT srcaddr, sum(packets) AS packets, sum(bytes) AS bytes, count(*) AS flows
FROM vpc_flow_logs
WHERE log_status = 'OK'
GROUP BY srcaddr
ORDER BY packets DESC
LIMIT 50;
