-- title: Top talking instances
-- question: Which EC2 instances moved the most bytes (needs a format with instance-id)?
-- source: VPC console Athena integration, VpcFlowLogsTopTalkingInstances
SELECT instance_id, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM vpc_flow_logs
WHERE instance_id IS NOT NULL
GROUP BY instance_id
ORDER BY bytes DESC
LIMIT 50;
