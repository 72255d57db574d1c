package dev.tributary.flink;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.AggregateFunction;

/**
 * Flink SQL aggregate UDF: every valid event of one window, packed as columns for the Python
 * sketch builders ({@link WindowColumns} has the format).
 *
 * <p>Why on the JVM: the Python (pandas) window aggregate it replaces kept every row in window
 * state, serialized every row again at each checkpoint, and converted every row to Arrow when the
 * window fired. Here a row costs six dictionary lookups and a few array appends, and its raw bytes
 * are kept only while a reservoir sample may still need them ({@link SampleCandidates}; the last
 * argument is the reservoir's k). When the window fires, each Python sketch builder gets one blob
 * with the columns it reads (identity strings, or values and sample candidates) and builds every
 * sketch of every dimension from it with numpy.
 *
 * <pre>
 * CREATE TEMPORARY FUNCTION pack_window AS 'dev.tributary.flink.PackWindow' LANGUAGE JAVA;
 * SELECT pack_window(event_time, user_id, session_id, item_id, category, country, device,
 *                    price, features, `raw`, 100) FROM ... GROUP BY TUMBLE(...)
 * </pre>
 */
@FunctionHint(
        accumulator = @DataTypeHint(value = "RAW", bridgedTo = WindowColumns.class,
                rawSerializer = WindowColumnsSerializer.class),
        output = @DataTypeHint(value = PackWindow.RESULT_TYPE, bridgedTo = RowData.class))
public class PackWindow extends AggregateFunction<RowData, WindowColumns> {

    /** The window packed twice: what the identity sketches read, and what the value sketches read. */
    public static final String RESULT_TYPE = "ROW<identity BYTES, `values` BYTES>";

    @Override
    public WindowColumns createAccumulator() {
        return new WindowColumns();
    }

    public void accumulate(
            WindowColumns acc,
            Long eventTime,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData userId,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData sessionId,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData itemId,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData category,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData country,
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData device,
            Double price,
            @DataTypeHint(value = "MAP<STRING, DOUBLE>", bridgedTo = MapData.class) MapData features,
            byte[] raw,
            Integer sampleSize) {
        acc.add(eventTime == null ? 0L : eventTime,
                new StringData[] {userId, sessionId, itemId, category, country, device}, price, features, raw,
                sampleSize == null ? WindowColumns.DEFAULT_SAMPLE_SIZE : sampleSize);
    }

    @Override
    public RowData getValue(WindowColumns acc) {
        return GenericRowData.of(acc.pack(WindowColumns.IDENTITY), acc.pack(WindowColumns.VALUES));
    }
}
