-- title: SSH and RDP traffic
-- question: Who connected, or tried to connect, over SSH (22) or RDP (3389)?
-- source: VPC console Athena integration, VpcFlowLogsSshRdpTraffic
SELECT srcaddr, dstaddr, dstport, action, count(*) AS flows, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE protocol = 6 AND dstport IN (22, 3389)
GROUP BY srcaddr, dstaddr, dstport, action
ORDER BY flows DESC
LIMIT 100;
