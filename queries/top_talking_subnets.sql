-- title: Top talking subnets
-- question: Which subnets moved the most bytes (needs a format with subnet-id)?
-- source: VPC console Athena integration, VpcFlowLogsTopTalkingSubnets
SELECT subnet_id, sum(bytes) AS bytes, sum(packets) AS packets, count(*) AS flows
FROM vpc_flow_logs
WHERE subnet_id IS NOT NULL
GROUP BY subnet_id
ORDER BY bytes DESC
LIMIT 50;
