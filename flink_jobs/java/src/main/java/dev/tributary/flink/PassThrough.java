package dev.tributary.flink;

import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.types.Row;

/**
 * Forwards each row unchanged. The sketch job puts it behind a rebalance with a parallelism of
 * its own, so the Python sketch builders downstream run as several subtasks that take turns
 * window by window (a plain Java operator: a Python map would pickle every packed window).
 */
public class PassThrough implements MapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row map(Row row) {
        return row;
    }
}
