package dev.tributary.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * Flink SQL scalar UDF: validates one raw {@code events.v1} message (Kafka value bytes) with
 * {@link EventValidator} and returns a ROW. {@code reason} is null for a valid event; for an
 * invalid one only {@code reason} and {@code detail} are set.
 *
 * <pre>
 * CREATE TEMPORARY FUNCTION parse_event AS 'dev.tributary.flink.ParseEvent' LANGUAGE JAVA;
 * SELECT e.reason, e.event_id, ... FROM (SELECT parse_event(`value`) AS e FROM events_raw);
 * </pre>
 */
public class ParseEvent extends ScalarFunction {

    public static final String RESULT_TYPE = "ROW<reason STRING, detail STRING, event_id STRING, "
            + "event_type STRING, event_time BIGINT, user_id STRING, session_id STRING, item_id STRING, "
            + "category STRING, country STRING, device STRING, price DOUBLE, impression_id STRING, "
            + "features MAP<STRING, DOUBLE>>";

    public @DataTypeHint(RESULT_TYPE) Row eval(byte[] raw) {
        EventValidator.Result r = EventValidator.validate(raw);
        if (!r.isValid()) {
            return Row.of(r.reason, r.detail, null, null, null, null, null, null, null, null, null,
                    null, null, null);
        }
        return Row.of(null, null, r.eventId, r.eventType, r.eventTime, r.userId, r.sessionId,
                r.itemId, r.category, r.country, r.device, r.price, r.impressionId, r.features);
    }

    /** Same input, same output: the planner may constant-fold and reuse results. */
    @Override
    public boolean isDeterministic() {
        return true;
    }
}
