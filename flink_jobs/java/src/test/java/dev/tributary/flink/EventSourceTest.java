package dev.tributary.flink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.Test;

/** The Kafka source's rows equal the parse_event UDF's on every shared vector, plus the metadata. */
class EventSourceTest {

    private static RowData deserialize(byte[] raw, int partition, long offset, long timestamp) {
        return deserialize(new ConsumerRecord<>("events.v1", partition, offset, timestamp,
                org.apache.flink.kafka.shaded.org.apache.kafka.common.record.TimestampType.CREATE_TIME, 0, raw.length,
                null, raw, new org.apache.flink.kafka.shaded.org.apache.kafka.common.header.internals.RecordHeaders(),
                java.util.Optional.empty()));
    }

    private static RowData deserialize(ConsumerRecord<byte[], byte[]> record) {
        List<RowData> out = new ArrayList<>();
        new EventDeserializer().deserialize(record, new Collector<>() {
            @Override
            public void collect(RowData row) {
                out.add(row);
            }

            @Override
            public void close() {}
        });
        assertEquals(1, out.size(), "one row per record, valid or not");
        return out.get(0);
    }

    @Test
    void everyVectorGivesTheUdfsFieldsThenTheRawBytesAndKafkaMetadata() throws IOException {
        RowType type = EventDeserializer.rowType();
        assertEquals(FastEventParser.ARITY + 4, type.getFieldCount());
        assertEquals(List.of("raw", "partition", "offset", "kafka_ts"),
                type.getFieldNames().subList(FastEventParser.ARITY, FastEventParser.ARITY + 4));
        int valid = 0;
        for (EventValidatorTest.Vector v : EventValidatorTest.vectors()) {
            RowData row = deserialize(v.raw(), 3, 42L, 1_700_000_000_123L);
            RowData udf = new ParseEvent().eval(v.raw());
            for (int i = 0; i < 13; i++) {
                assertEquals(((GenericRowData) udf).getField(i), ((GenericRowData) row).getField(i), v.name() + " field " + i);
            }
            assertEquals(v.reason(), row.isNullAt(0) ? null : row.getString(0).toString(), v.name());
            if (v.reason() == null) {
                valid++;
                assertEquals(FastEventParserTest.features(udf), FastEventParserTest.features(row), v.name());
                assertEquals(v.eventTime().longValue(), EventDeserializer.eventTime(row), v.name());
            } else {
                assertEquals(0L, EventDeserializer.eventTime(row), "an invalid record never advances a watermark");
            }
            assertTrue(java.util.Arrays.equals(v.raw(), row.getBinary(FastEventParser.ARITY)), v.name());
            assertEquals(3, row.getInt(FastEventParser.ARITY + 1));
            assertEquals(42L, row.getLong(FastEventParser.ARITY + 2));
            assertEquals(1_700_000_000_123L, row.getTimestamp(FastEventParser.ARITY + 3, 3).getMillisecond());
        }
        assertTrue(valid > 0 && valid < EventValidatorTest.vectors().size(), "vectors hold both kinds");
    }

    @Test
    void nullValueIsADeadLetterNotACrash() {
        RowData row = deserialize(new ConsumerRecord<>("events.v1", 0, 7L, new byte[0], null));
        assertEquals(StringData.fromString(EventValidator.INVALID_JSON), row.getString(0));
        assertTrue(row.isNullAt(EventDeserializer.EVENT_TIME));
        assertEquals(7L, row.getLong(FastEventParser.ARITY + 2));
    }

    @Test
    void watermarkIsTheLargestEventTimeMinusTheBoundLikeTheSqlOne() {
        List<Long> emitted = new ArrayList<>();
        WatermarkOutput output = new WatermarkOutput() {
            @Override
            public void emitWatermark(Watermark watermark) {
                emitted.add(watermark.getTimestamp());
            }

            @Override
            public void markIdle() {}

            @Override
            public void markActive() {}
        };
        EventSource.MaxMinus gen = new EventSource.MaxMinus(5_000);
        gen.onPeriodicEmit(output);
        assertTrue(emitted.isEmpty(), "no watermark before the first event (CURRENT_WATERMARK stays NULL)");
        gen.onEvent(null, 20_000, output);
        gen.onEvent(null, 12_000, output); // out of order: the watermark does not go back
        gen.onPeriodicEmit(output);
        gen.onEvent(null, 0, output); // an invalid record
        gen.onPeriodicEmit(output);
        assertEquals(List.of(15_000L, 15_000L), emitted);
        assertFalse(emitted.contains(14_999L));
    }
}
