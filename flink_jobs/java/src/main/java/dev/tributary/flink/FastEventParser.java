package dev.tributary.flink;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.flink.core.memory.MemorySegment;
import org.apache.flink.core.memory.MemorySegmentFactory;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryArrayData;
import org.apache.flink.table.data.binary.BinaryMapData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.writer.BinaryArrayWriter;

/**
 * The fast path of {@link ParseEvent}: one pass over the bytes of an ordinary valid event,
 * straight into Flink's internal row (string fields are byte slices of the message, so nothing
 * is decoded to Java strings and encoded back).
 *
 * <p>It only <em>accepts</em>; it never rejects. Anything outside the common shape (a byte
 * &ge; 0x80 or a backslash anywhere, an unknown, repeated or null field, an RFC 3339 time, a
 * value of the wrong type or out of range, any JSON it does not fully understand) returns
 * {@code null}, and {@link EventValidator} (the reference, checked against the shared vectors)
 * decides and explains. So a message the validator rejects can never pass here: that property
 * is what {@code FastEventParserTest} checks, on the shared vectors and on mutated events.
 *
 * <p>Why: the tree-model validator took ~34 % of the source task's CPU in a JFR profile
 * (UTF-8 decode, Jackson tree, a surrogate walk, then a Row converted to internal data).
 */
final class FastEventParser extends AsciiJsonCursor {

    static final int ARITY = 14;

    private static final byte[][] KEYS = {
        bytes("event_id"), bytes("event_type"), bytes("event_time"), bytes("user_id"),
        bytes("session_id"), bytes("item_id"), bytes("category"), bytes("country"),
        bytes("device"), bytes("price"), bytes("impression_id"), bytes("features"),
    };
    private static final int EVENT_ID = 0, EVENT_TYPE = 1, EVENT_TIME = 2, USER_ID = 3, SESSION_ID = 4,
            ITEM_ID = 5, CATEGORY = 6, COUNTRY = 7, DEVICE = 8, PRICE = 9, IMPRESSION_ID = 10,
            FEATURES = 11;
    /** Longest string (in characters = bytes: the fast path is ASCII only) per string field. */
    private static final int[] MAX_LEN = {64, 0, 0, 128, 128, 128, 128, 2, 0, 0, 128, 0};
    private static final int REQUIRED = (1 << IMPRESSION_ID) - 1; // event_id .. price
    // Compared as bytes: decoding each event's strings to java.lang.String (and the thread-local
    // buffers that takes) was 9 % of the source thread.
    private static final byte[][] EVENT_TYPES = {bytes("impression"), bytes("click"), bytes("purchase")};
    private static final byte[][] DEVICES = {bytes("mobile"), bytes("desktop"), bytes("tablet")};
    private static final byte[] IMPRESSION = bytes("impression");
    private static final BinaryMapData EMPTY_FEATURES = emptyMap();
    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    /** Field index by {@link #keyHash} (-1: none): one probe instead of comparing twelve names. */
    private static final int[] KEY_BY_HASH = keyTable();

    /** From the length, the first and the second-to-last byte (event_type and event_time differ only there). */
    private static int keyHash(int len, byte first, byte secondToLast) {
        return (len + first * 3 + secondToLast) & 63;
    }

    private static int[] keyTable() {
        int[] table = new int[64];
        Arrays.fill(table, -1);
        for (int k = 0; k < KEYS.length; k++) {
            byte[] name = KEYS[k];
            int h = keyHash(name.length, name[0], name[name.length - 2]);
            if (table[h] != -1) {
                throw new IllegalStateException("field names collide in keyHash: pick other constants");
            }
            table[h] = k;
        }
        return table;
    }

    private static BinaryMapData emptyMap() {
        BinaryArrayData keys = new BinaryArrayData();
        new BinaryArrayWriter(keys, 0, 8).complete();
        BinaryArrayData values = new BinaryArrayData();
        new BinaryArrayWriter(values, 0, 8).complete();
        return BinaryMapData.valueOf(keys, values);
    }

    /**
     * No byte &ge; 0x80 and no backslash, eight bytes at a time: this check was a third of the
     * parser's samples one byte at a time (JFR; the early exit keeps the JIT from vectorizing it).
     * A backslash byte becomes zero after the XOR, and {@code (x - 0x01..) & ~x & 0x80..} is
     * non-zero exactly when some byte of {@code x} is zero.
     */
    static boolean plainAscii(byte[] raw) {
        int i = 0;
        for (; i + 8 <= raw.length; i += 8) {
            long w = (long) LONGS.get(raw, i);
            long x = w ^ 0x5C5C5C5C5C5C5C5CL;
            if (((w | ((x - 0x0101010101010101L) & ~x)) & 0x8080808080808080L) != 0) {
                return false;
            }
        }
        for (; i < raw.length; i++) {
            if (raw[i] < 0 || raw[i] == '\\') {
                return false;
            }
        }
        return true;
    }

    private FastEventParser(byte[] raw) {
        super(raw);
    }

    /** The parsed event in {@link ParseEvent#RESULT_TYPE} order, or null: ask the validator. */
    static GenericRowData parse(byte[] raw) {
        return parse(raw, ARITY);
    }

    /** The same, in a row of {@code arity} &ge; {@link #ARITY} fields: the caller fills the rest
     * ({@link EventDeserializer} adds the Kafka metadata without copying the row). */
    static GenericRowData parse(byte[] raw, int arity) {
        if (raw == null) {
            return null;
        }
        if (!plainAscii(raw)) { // non-ASCII or an escape: UTF-8 and surrogate rules apply
            return null;
        }
        try {
            return new FastEventParser(raw).event(arity);
        } catch (Bail e) {
            return null;
        }
    }

    private GenericRowData event(int arity) throws Bail {
        StringData[] text = new StringData[KEYS.length];
        long eventTime = 0;
        double price = 0;
        BinaryMapData features = EMPTY_FEATURES;
        int seen = 0;
        ws();
        expect('{');
        ws();
        if (peek() == '}') {
            throw bail();
        }
        while (true) {
            int key = key();
            if ((seen & (1 << key)) != 0) {
                throw bail(); // repeated field: the validator applies "last one wins"
            }
            seen |= 1 << key;
            ws();
            expect(':');
            ws();
            switch (key) {
                case EVENT_TIME -> eventTime = eventTime();
                case PRICE -> price = price();
                case FEATURES -> features = features();
                default -> text[key] = string(MAX_LEN[key]);
            }
            ws();
            int c = next();
            if (c == '}') {
                break;
            }
            if (c != ',') {
                throw bail();
            }
            ws();
        }
        ws();
        if (p != b.length || (seen & REQUIRED) != REQUIRED) {
            throw bail();
        }
        byte[] eventType = text[EVENT_TYPE].toBytes();
        if (!oneOf(eventType, EVENT_TYPES) || !oneOf(text[DEVICE].toBytes(), DEVICES) || !country(text[COUNTRY])) {
            throw bail();
        }
        if (text[IMPRESSION_ID] == null && !Arrays.equals(eventType, IMPRESSION)) {
            throw bail();
        }
        GenericRowData row = new GenericRowData(arity);
        // reason, detail stay null: valid
        row.setField(2, text[EVENT_ID]);
        row.setField(3, text[EVENT_TYPE]);
        row.setField(4, eventTime);
        row.setField(5, text[USER_ID]);
        row.setField(6, text[SESSION_ID]);
        row.setField(7, text[ITEM_ID]);
        row.setField(8, text[CATEGORY]);
        row.setField(9, text[COUNTRY]);
        row.setField(10, text[DEVICE]);
        row.setField(11, price);
        row.setField(12, text[IMPRESSION_ID]);
        row.setField(13, features);
        return row;
    }

    // ---------------------------------------------------------------- fields

    private int key() throws Bail {
        expect('"');
        int start = p;
        int end = stringEnd();
        int len = end - start;
        if (len > 1) {
            int k = KEY_BY_HASH[keyHash(len, b[start], b[end - 2])];
            if (k >= 0 && KEYS[k].length == len && regionEquals(start, KEYS[k])) {
                return k;
            }
        }
        throw bail(); // unknown field: the validator ignores it (after checking it is JSON)
    }

    /** A JSON string of 1..max characters (0 = no length rule beyond non-empty). */
    private StringData string(int max) throws Bail {
        if (peek() != '"') {
            throw bail(); // null, a number, ...: the validator says which error
        }
        p++;
        int start = p;
        int len = stringEnd() - start;
        if (len < 1 || (max > 0 && len > max)) {
            throw bail();
        }
        byte[] copy = new byte[len];
        System.arraycopy(b, start, copy, 0, len);
        return StringData.fromBytes(copy);
    }

    private long eventTime() throws Bail {
        int start = p;
        if (!number() || p - start > 18) {
            throw bail(); // a fraction/exponent, or too long for a plain long
        }
        long ms = Long.parseLong(new String(b, start, p - start, StandardCharsets.ISO_8859_1));
        if (ms < 0 || ms > EventValidator.MAX_EVENT_TIME_MS) {
            throw bail();
        }
        return ms;
    }

    private double price() throws Bail {
        double d = decimal();
        if (!Double.isFinite(d) || !(d >= 0)) {
            throw bail();
        }
        return d;
    }

    /**
     * The features object as a binary map. Binary because the generated code copies the parsed row
     * and serializes it to the window: a {@code GenericMapData} over a {@code LinkedHashMap} was
     * converted to binary on each of those (~9 % of the source thread in a JFR profile); a binary
     * map is copied and written as one array.
     */
    private BinaryMapData features() throws Bail {
        expect('{');
        ws();
        if (peek() == '}') {
            p++;
            return EMPTY_FEATURES;
        }
        int n = 0;
        int[] start = new int[8];
        int[] len = new int[8];
        double[] value = new double[8];
        while (true) {
            expect('"');
            int s = p;
            int l = stringEnd() - s;
            ws();
            expect(':');
            ws();
            double d = decimal();
            if (!Double.isFinite(d) || n == EventValidator.MAX_FEATURES || repeated(start, len, n, s, l)) {
                throw bail(); // too many, or a repeated name: the validator explains
            }
            if (n == start.length) {
                start = Arrays.copyOf(start, 2 * n);
                len = Arrays.copyOf(len, 2 * n);
                value = Arrays.copyOf(value, 2 * n);
            }
            start[n] = s;
            len[n] = l;
            value[n++] = d;
            ws();
            int c = next();
            if (c == '}') {
                return binaryMap(start, len, value, n);
            }
            if (c != ',') {
                throw bail();
            }
            ws();
        }
    }

    private BinaryMapData binaryMap(int[] start, int[] len, double[] value, int n) {
        MemorySegment[] message = {MemorySegmentFactory.wrap(b)};
        BinaryArrayData keys = new BinaryArrayData();
        BinaryArrayWriter kw = new BinaryArrayWriter(keys, n, 8);
        BinaryArrayData values = new BinaryArrayData();
        BinaryArrayWriter vw = new BinaryArrayWriter(values, n, 8);
        for (int i = 0; i < n; i++) {
            kw.writeString(i, BinaryStringData.fromAddress(message, start[i], len[i]));
            vw.writeDouble(i, value[i]);
        }
        kw.complete();
        vw.complete();
        return BinaryMapData.valueOf(keys, values);
    }

    private boolean repeated(int[] start, int[] len, int n, int s, int l) {
        for (int i = 0; i < n; i++) {
            if (len[i] == l && Arrays.equals(b, start[i], start[i] + l, b, s, s + l)) {
                return true;
            }
        }
        return false;
    }

    // ---------------------------------------------------------------- helpers

    private static boolean country(StringData s) {
        byte[] v = s.toBytes();
        return v.length == 2 && v[0] >= 'A' && v[0] <= 'Z' && v[1] >= 'A' && v[1] <= 'Z';
    }

    private static boolean oneOf(byte[] s, byte[][] allowed) {
        for (byte[] a : allowed) {
            if (Arrays.equals(a, s)) {
                return true;
            }
        }
        return false;
    }

    private boolean regionEquals(int start, byte[] name) {
        for (int i = 0; i < name.length; i++) {
            if (b[start + i] != name[i]) {
                return false;
            }
        }
        return true;
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }
}
