package dev.tributary.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.TimestampData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.utils.LogicalTypeParser;
import org.apache.flink.util.Collector;

/**
 * Reads one {@code events.v1} record straight into the row the sketch job's SQL reads: the event's
 * fields, flat (valid: {@code reason} null; invalid: only {@code reason} and {@code detail}), then
 * the raw bytes and the Kafka metadata the dead-letter record carries.
 *
 * <p>Why here and not in a SQL UDF after a {@code raw}-format table source: the planner copied the
 * UDF's nested ROW into a binary row in two calcs (26 % of the source thread in a JFR profile),
 * evaluated the UDF in the watermark's computed column as well, and the DataStream bridge that lets
 * two plans share one source converted every record to an external {@code Row} and back. A row of
 * Flink's internal data structures, typed {@link InternalTypeInfo}, enters the Table API without a
 * conversion. Validation is the same code as {@link ParseEvent} ({@link FastEventParser}, else
 * {@link EventValidator}), so the SQL and this source accept and reject exactly the same bytes.
 */
public class EventDeserializer implements KafkaRecordDeserializationSchema<RowData> {
    private static final long serialVersionUID = 1L;

    /** {@link ParseEvent#RESULT_TYPE}'s fields, then the message and where it came from. */
    public static final String ROW_TYPE = ParseEvent.RESULT_TYPE.substring(0, ParseEvent.RESULT_TYPE.length() - 1)
            + ", `raw` BYTES, `partition` INT, `offset` BIGINT, `kafka_ts` TIMESTAMP_LTZ(3)>";

    static final int EVENT_TIME = 4;
    private static final int RAW = FastEventParser.ARITY;
    private static final int ARITY = RAW + 4;

    public static RowType rowType() {
        return (RowType) LogicalTypeParser.parse(ROW_TYPE, EventDeserializer.class.getClassLoader());
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<RowData> out) {
        byte[] raw = record.value();
        GenericRowData row = FastEventParser.parse(raw, ARITY);
        if (row == null) {
            row = ParseEvent.toRow(EventValidator.validate(raw), ARITY);
        }
        row.setField(RAW, raw);
        row.setField(RAW + 1, record.partition());
        row.setField(RAW + 2, record.offset());
        row.setField(RAW + 3, TimestampData.fromEpochMillis(record.timestamp()));
        out.collect(row);
    }

    /** The event time, or 0 for an invalid record: it goes to the DLQ and never advances a watermark. */
    static long eventTime(RowData row) {
        return row.isNullAt(EVENT_TIME) ? 0L : row.getLong(EVENT_TIME);
    }

    @Override
    public TypeInformation<RowData> getProducedType() {
        return InternalTypeInfo.of(rowType());
    }
}
