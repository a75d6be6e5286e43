-- title: Traffic from a source address
-- question: Where did one source address send traffic, and was it allowed?
-- param: src_addr = 10.0.0.1 : the source address
-- source: VPC console Athena integration, VpcFlowLogsTrafficFrmSrcAddr
SELECT dstaddr, dstport, protocol, action, count(*) AS flows, sum(bytes) AS bytes
FROM vpc_flow_logs
WHERE srcaddr = '${src_addr}'
GROUP BY dstaddr, dstport, protocol, action
ORDER BY bytes DESC
LIMIT 100;
