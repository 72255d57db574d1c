package dev.tributary.flink;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * Flink SQL scalar UDF: validates one raw {@code events.v1} message (Kafka value bytes) and
 * returns a ROW. {@code reason} is null for a valid event; for an invalid one only
 * {@code reason} and {@code detail} are set.
 *
 * <p>Ordinary valid events take {@link FastEventParser} (one pass over the bytes); everything
 * else, and every rejection, comes from {@link EventValidator}. The row is Flink's internal
 * {@link RowData}, so the planner does not convert it field by field.
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

    // The planner evaluates parse_event several times per record (the watermark's rowtime, the
    // window path, the DLQ and late paths: separate operators, one after another in one task
    // thread) on the same bytes: remembering the thread's last input makes every call after the
    // first an array compare instead of a parse. Per thread, not per instance, because each
    // operator has its own instance. The row is never modified downstream (read-only fields).
    private static final ThreadLocal<Object[]> LAST = ThreadLocal.withInitial(() -> new Object[2]);

    public @DataTypeHint(value = RESULT_TYPE, bridgedTo = RowData.class) RowData eval(byte[] raw) {
        Object[] last = LAST.get();
        if (raw != null && last[0] != null && Arrays.equals(raw, (byte[]) last[0])) {
            return (RowData) last[1];
        }
        RowData row = FastEventParser.parse(raw);
        if (row == null) {
            row = toRow(EventValidator.validate(raw));
        }
        last[0] = raw;
        last[1] = row;
        return row;
    }

    /** The validator's verdict as an internal row. */
    static GenericRowData toRow(EventValidator.Result r) {
        return toRow(r, FastEventParser.ARITY);
    }

    /** The same, in a row of {@code arity} &ge; 14 fields (the rest left null for the caller). */
    static GenericRowData toRow(EventValidator.Result r, int arity) {
        GenericRowData row = new GenericRowData(arity);
        if (!r.isValid()) {
            row.setField(0, str(r.reason));
            row.setField(1, str(r.detail));
            return row;
        }
        row.setField(2, str(r.eventId));
        row.setField(3, str(r.eventType));
        row.setField(4, r.eventTime);
        row.setField(5, str(r.userId));
        row.setField(6, str(r.sessionId));
        row.setField(7, str(r.itemId));
        row.setField(8, str(r.category));
        row.setField(9, str(r.country));
        row.setField(10, str(r.device));
        row.setField(11, r.price);
        row.setField(12, str(r.impressionId));
        Map<StringData, Double> features = new LinkedHashMap<>();
        r.features.forEach((k, v) -> features.put(StringData.fromString(k), v));
        row.setField(13, new GenericMapData(features));
        return row;
    }

    private static StringData str(String s) {
        return s == null ? null : StringData.fromString(s);
    }

    /** Same input, same output: the planner may constant-fold and reuse results. */
    @Override
    public boolean isDeterministic() {
        return true;
    }
}
