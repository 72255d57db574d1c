package dev.tributary.flink;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.StringData;

/**
 * One event-time window's valid events as columns: the accumulator of {@link PackWindow}.
 *
 * <p>Strings are dictionary-encoded (a code per row, each distinct value stored once, in order of
 * first appearance), so a window holds ~4 bytes per string field per event instead of a row
 * object per event, and a checkpoint writes a few arrays instead of serializing every row.
 * Python reads the packed form with numpy ({@code flink_jobs/window_columns.py}) and builds
 * every sketch from it; nothing here knows what a sketch is.
 *
 * <p>Packed form (little-endian), version 1:
 * <pre>
 * u8 version | u8 sections | i32 rows | i64 first event time
 * string columns (STRING_COLUMNS order; user_id, session_id, item_id only with IDENTITY):
 *     i32 distinct | i32 code of null (-1: none) | (distinct + 1) x i32 offset | UTF-8 values | rows x i32 code
 * with VALUES:
 *     rows x f64 price (NaN for null)
 *     i32 features | features x (i32 length, UTF-8 name, i32 count, count x f64)
 *     the reservoir's candidates ({@link SampleCandidates}): i32 k | i32 n | n x i32 row |
 *     n x i64 priority | (n + 1) x i32 offset | their raw events, concatenated
 * </pre>
 *
 * Version 1 carried every raw event instead of the candidates; {@link #unpack} still reads it
 * (a checkpoint taken before the upgrade).
 *
 * Offsets are Arrow's: value i is bytes [offset i, offset i+1), so Python hands the buffers to
 * pyarrow without a per-value loop. The dimensions (category, country, device) are always there;
 * the sections let each Python sketch builder get only what it reads.
 */
public final class WindowColumns {

    public static final byte VERSION = 2;
    /** The reservoir's sample size when a window does not say (app/sketches/defaults.py RESERVOIR_K). */
    public static final int DEFAULT_SAMPLE_SIZE = 100;
    /** Sections of the packed form: the identity strings, and the values (prices, features, raw events). */
    public static final int IDENTITY = 1;
    public static final int VALUES = 2;
    public static final int ALL = IDENTITY | VALUES;
    /** STRING_COLUMNS index -> the section it belongs to (0: always packed). */
    private static final int[] STRING_SECTION = {IDENTITY, IDENTITY, IDENTITY, 0, 0, 0};
    /** The string fields kept, in packed order. */
    public static final String[] STRING_COLUMNS = {"user_id", "session_id", "item_id", "category", "country", "device"};

    int rows;
    long firstEventTime;
    final ByteDictionary[] strings = new ByteDictionary[STRING_COLUMNS.length];
    final int[][] codes = new int[STRING_COLUMNS.length][];
    double[] prices = new double[64];
    ByteDictionary featureNames = new ByteDictionary();
    final List<DoubleColumn> features = new ArrayList<>();
    /** Created by the first event, with the sample size it asks for. */
    SampleCandidates sample;

    public WindowColumns() {
        for (int i = 0; i < strings.length; i++) {
            strings[i] = new ByteDictionary();
            codes[i] = new int[64];
        }
    }

    /** Appends one event (string fields in {@link #STRING_COLUMNS} order). */
    public void add(long eventTime, StringData[] values, Double price, MapData featureMap, byte[] rawEvent) {
        add(eventTime, values, price, featureMap, rawEvent, DEFAULT_SAMPLE_SIZE);
    }

    /** Appends one event; {@code sampleSize}: the reservoir's k (the first event's counts). */
    public void add(long eventTime, StringData[] values, Double price, MapData featureMap, byte[] rawEvent,
            int sampleSize) {
        if (rows == 0) {
            firstEventTime = eventTime;
        }
        if (rows == prices.length) {
            int capacity = rows * 2;
            for (int i = 0; i < codes.length; i++) {
                codes[i] = Arrays.copyOf(codes[i], capacity);
            }
            prices = Arrays.copyOf(prices, capacity);
        }
        for (int i = 0; i < strings.length; i++) {
            codes[i][rows] = strings[i].code(values[i]);
        }
        prices[rows] = price == null ? Double.NaN : price;
        if (featureMap != null) {
            ArrayData names = featureMap.keyArray();
            ArrayData featureValues = featureMap.valueArray();
            for (int i = 0; i < featureMap.size(); i++) {
                if (!names.isNullAt(i) && !featureValues.isNullAt(i)) {
                    int f = featureNames.code(names.getString(i));
                    if (f == features.size()) {
                        features.add(new DoubleColumn());
                    }
                    features.get(f).add(featureValues.getDouble(i));
                }
            }
        }
        offerToSample(rows, rawEvent, sampleSize);
        rows++;
    }

    private void offerToSample(int row, byte[] rawEvent, int sampleSize) {
        if (sample == null) {
            sample = new SampleCandidates(sampleSize);
        }
        int[] columns = SampleCandidates.GROUP_COLUMNS;
        sample.offer(row, codes[columns[0]][row], codes[columns[1]][row], codes[columns[2]][row], rawEvent);
    }

    public int rows() {
        return rows;
    }

    /** A deep copy: a few array copies, no re-hashing (the heap state backend's copy-on-write
     * calls this once per window after each checkpoint). */
    public WindowColumns copy() {
        WindowColumns w = new WindowColumns();
        w.rows = rows;
        w.firstEventTime = firstEventTime;
        for (int i = 0; i < strings.length; i++) {
            w.strings[i] = strings[i].copy();
            w.codes[i] = Arrays.copyOf(codes[i], codes[i].length);
        }
        w.prices = Arrays.copyOf(prices, prices.length);
        w.featureNames = featureNames.copy();
        for (DoubleColumn f : features) {
            w.features.add(f.copy());
        }
        w.sample = sample == null ? null : sample.copy();
        return w;
    }

    /** The packed form with every section (see the class comment). */
    public byte[] pack() {
        return pack(ALL);
    }

    /** The packed form with the given sections. */
    public byte[] pack(int sections) {
        boolean values = (sections & VALUES) != 0;
        int size = 2 + 4 + 8;
        for (int i = 0; i < strings.length; i++) {
            if (packs(i, sections)) {
                size += strings[i].packedSize() + 4 * rows;
            }
        }
        if (values) {
            size += 8 * rows + 4;
            for (int f = 0; f < features.size(); f++) {
                size += 8 + featureNames.value(f).length + 8 * features.get(f).size;
            }
            size += sample == null ? 12 : sample.packedSize();
        }
        ByteBuffer out = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        out.put(VERSION).put((byte) sections).putInt(rows).putLong(firstEventTime);
        for (int i = 0; i < strings.length; i++) {
            if (packs(i, sections)) {
                strings[i].pack(out);
                putInts(out, codes[i], rows);
            }
        }
        if (values) {
            putDoubles(out, prices, rows);
            out.putInt(features.size());
            for (int f = 0; f < features.size(); f++) {
                byte[] name = featureNames.value(f);
                out.putInt(name.length).put(name).putInt(features.get(f).size);
                putDoubles(out, features.get(f).values, features.get(f).size);
            }
            if (sample == null) {
                out.putInt(0).putInt(0).putInt(0);
            } else {
                sample.pack(out);
            }
        }
        return out.array();
    }

    private static boolean packs(int column, int sections) {
        return STRING_SECTION[column] == 0 || (sections & STRING_SECTION[column]) != 0;
    }

    /** The inverse of {@link #pack()} (checkpoint restore). */
    public static WindowColumns unpack(byte[] packed) {
        ByteBuffer in = ByteBuffer.wrap(packed).order(ByteOrder.LITTLE_ENDIAN);
        byte version = in.get();
        if (version != VERSION && version != 1) {
            throw new IllegalArgumentException("unknown packed window version " + version);
        }
        if (in.get() != ALL) {
            throw new IllegalArgumentException("a checkpointed window has every section");
        }
        WindowColumns w = new WindowColumns();
        w.rows = in.getInt();
        w.firstEventTime = in.getLong();
        int capacity = Math.max(w.rows, 64);
        for (int i = 0; i < w.strings.length; i++) {
            w.strings[i] = ByteDictionary.unpack(in);
            w.codes[i] = getInts(in, w.rows, capacity);
        }
        w.prices = new double[capacity];
        in.asDoubleBuffer().get(w.prices, 0, w.rows);
        in.position(in.position() + 8 * w.rows);
        int nFeatures = in.getInt();
        for (int f = 0; f < nFeatures; f++) {
            byte[] name = new byte[in.getInt()];
            in.get(name);
            w.featureNames.code(name, 0, name.length);
            DoubleColumn column = new DoubleColumn();
            column.size = in.getInt();
            column.values = new double[Math.max(column.size, 16)];
            in.asDoubleBuffer().get(column.values, 0, column.size);
            in.position(in.position() + 8 * column.size);
            w.features.add(column);
        }
        // The candidates (version 1: every event) are offered again: what a group keeps from
        // them is what it had kept, and later events meet the same thresholds.
        int k = version == 1 ? DEFAULT_SAMPLE_SIZE : in.getInt();
        int n = version == 1 ? w.rows : in.getInt();
        int[] rowOf = new int[n];
        if (version == 1) {
            Arrays.setAll(rowOf, i -> i);
        } else {
            in.asIntBuffer().get(rowOf);
            in.position(in.position() + 4 * n + 8 * n);  // priorities: recomputed from the bytes
        }
        int[] ends = getInts(in, n + 1, n + 1);
        byte[] raw = new byte[ends[n]];
        in.get(raw);
        for (int i = 0; i < n; i++) {
            w.offerToSample(rowOf[i], Arrays.copyOfRange(raw, ends[i], ends[i + 1]), k);
        }
        return w;
    }

    /** Bulk little-endian writes: an int/double view copies whole arrays (putInt per value was
     * 13 % of the window thread). */
    static void putInts(ByteBuffer out, int[] values, int n) {
        out.asIntBuffer().put(values, 0, n);
        out.position(out.position() + 4 * n);
    }

    static void putDoubles(ByteBuffer out, double[] values, int n) {
        out.asDoubleBuffer().put(values, 0, n);
        out.position(out.position() + 8 * n);
    }

    private static int[] getInts(ByteBuffer in, int n, int capacity) {
        int[] values = new int[capacity];
        in.asIntBuffer().get(values, 0, n);
        in.position(in.position() + 4 * n);
        return values;
    }

    /** A growable double array. */
    static final class DoubleColumn {
        double[] values = new double[16];
        int size;

        void add(double v) {
            if (size == values.length) {
                values = Arrays.copyOf(values, size * 2);
            }
            values[size++] = v;
        }

        DoubleColumn copy() {
            DoubleColumn c = new DoubleColumn();
            c.values = Arrays.copyOf(values, values.length);
            c.size = size;
            return c;
        }
    }
}
