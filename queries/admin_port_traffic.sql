-- title: Admin port traffic
-- question: Which sources reached administrative ports (SSH, RDP, databases, WinRM), accepted or not?
-- source: VPC console Athena integration, VpcFlowLogsAdminPortTraffic
SELECT srcaddr, dstaddr, dstport, action, count(*) AS flows, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE dstport IN (22, 3389, 1433, 3306, 5432, 5985, 5986)
GROUP BY srcaddr, dstaddr, dstport, action
ORDER BY flows DESC
LIMIT 100;
