-- title: Bytes per source/destination pair
-- question: Which 50 source and destination pairs transferred the most bytes?
-- source: VPC console Athena integration, VpcFlowLogsTotalBytesTransferred
SELECT srcaddr, dstaddr, sum(bytes) AS bytes, sum(packets) AS packets
FROM vpc_flow_logs
WHERE log_status = 'OK'
GROUP BY srcaddr, dstaddr
ORDER BY bytes DESC
LIMIT 50;
