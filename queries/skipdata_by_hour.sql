-- title: SKIPDATA records by hour
-- question: When did flow logs skip records because of capacity limits or internal errors?
-- source: CloudWatch Logs Insights example: filter logStatus="SKIPDATA" | stats count(*) by bin(1h)
SELECT date_trunc('hour', to_timestamp("start")) AS hour_start, count(*) AS skipdata_records
FROM vpc_flow_logs
WHERE log_status = 'SKIPDATA'
GROUP BY 1
ORDER BY 1;
