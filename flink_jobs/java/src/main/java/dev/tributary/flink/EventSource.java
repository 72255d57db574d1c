package dev.tributary.flink;

import java.time.Duration;
import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.OffsetResetStrategy;
import org.apache.flink.table.data.RowData;

/**
 * The sketch job's Kafka source (events parsed by {@link EventDeserializer}) and its watermarks,
 * built here so PyFlink only calls two factories through the gateway. Same behaviour as the
 * SQL table source it replaces ({@code flink_jobs/sql.py source_ddl}): committed group offsets,
 * else the earliest; {@code read_committed}; partition discovery; per-partition watermarks of
 * {@code event_time - outOfOrderness} with idleness and optional alignment.
 */
public final class EventSource {
    private EventSource() {}

    public static KafkaSource<RowData> kafka(String bootstrap, String topic, String groupId, long discoveryMs) {
        return KafkaSource.<RowData>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(topic)
                .setGroupId(groupId)
                .setStartingOffsets(OffsetsInitializer.committedOffsets(OffsetResetStrategy.EARLIEST))
                .setDeserializer(new EventDeserializer())
                .setProperty("isolation.level", "read_committed")
                .setProperty("partition.discovery.interval.ms", Long.toString(discoveryMs))
                .build();
    }

    /** {@code maxDriftMs} &le; 0: no alignment. */
    public static WatermarkStrategy<RowData> watermarks(long outOfOrdernessMs, long idleTimeoutMs, String alignmentGroup,
                                                        long maxDriftMs, long alignmentUpdateMs) {
        WatermarkStrategy<RowData> strategy = WatermarkStrategy.<RowData>forGenerator(ctx -> new MaxMinus(outOfOrdernessMs))
                .withTimestampAssigner((row, kafkaTs) -> EventDeserializer.eventTime(row));
        if (idleTimeoutMs > 0) {
            strategy = strategy.withIdleness(Duration.ofMillis(idleTimeoutMs));
        }
        if (maxDriftMs > 0) {
            strategy = strategy.withWatermarkAlignment(alignmentGroup, Duration.ofMillis(maxDriftMs),
                    Duration.ofMillis(alignmentUpdateMs));
        }
        return strategy;
    }

    /**
     * The SQL {@code WATERMARK FOR rowtime AS rowtime - INTERVAL ...}: the largest event time seen
     * minus the bound, emitted periodically. (Flink's {@code BoundedOutOfOrdernessWatermarks}
     * subtracts one more millisecond; the late split's arithmetic is written for the SQL form.)
     */
    static final class MaxMinus implements WatermarkGenerator<RowData> {
        private final long bound;
        private long max = Long.MIN_VALUE;

        MaxMinus(long bound) {
            this.bound = bound;
        }

        @Override
        public void onEvent(RowData row, long timestamp, WatermarkOutput output) {
            max = Math.max(max, timestamp);
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            if (max != Long.MIN_VALUE) {
                output.emitWatermark(new Watermark(max - bound));
            }
        }
    }
}
