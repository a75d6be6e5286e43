-- title: UDP users
-- question: Which sources sent UDP traffic, and how many flows each?
-- source: CloudWatch Logs Insights example: filter protocol=17 | stats count(*) by srcAddr
SELECT srcaddr, count(*) AS flows
FROM vpc_flow_logs
WHERE protocol = 17
GROUP BY srcaddr
ORDER BY flows DESC
LIMIT 100;
