-- title: IPv6 traffic
-- question: How much traffic did each IPv6 source and destination pair exchange?
-- source: VPC console Athena integration, VpcFlowLogsIPv6Traffic
SELECT srcaddr, dstaddr, count(*) AS flows, sum(packets) AS packets, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE srcaddr LIKE '%:%' OR dstaddr LIKE '%:%'
GROUP BY srcaddr, dstaddr
ORDER BY bytes DESC
LIMIT 100;
