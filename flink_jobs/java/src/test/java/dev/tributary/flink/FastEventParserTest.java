package dev.tributary.flink;

import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.binary.BinaryMapData;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The fast path only ever accepts, and only what the validator accepts, with the same fields.
 * Checked on the shared vectors and on many random mutations of ordinary events.
 */
class FastEventParserTest {

    private static final String[] BASES = {
        "{\"event_id\":\"7-18bcfe56800-e2\",\"event_type\":\"impression\",\"event_time\":1700000000001,"
                + "\"user_id\":\"u0056500\",\"session_id\":\"7-18bcfe56800-s1\",\"item_id\":\"i0003e0\","
                + "\"category\":\"music\",\"country\":\"US\",\"device\":\"mobile\",\"price\":16.36,"
                + "\"features\":{\"position\":4.0,\"dwell\":2.502}}",
        "{ \"event_id\" : \"e9\", \"event_type\":\"click\", \"event_time\":0, \"user_id\":\"u\","
                + " \"session_id\":\"s\", \"item_id\":\"i\", \"category\":\"c\", \"country\":\"DE\","
                + " \"device\":\"tablet\", \"price\":-0, \"impression_id\":\"e2\", \"features\":{\"a\":-0,"
                + "\"b\":1e3,\"c\":12345678901234567890} }\n",
        "{\"event_type\":\"purchase\",\"event_id\":\"e\",\"event_time\":253402300799999,\"user_id\":\"u\","
                + "\"session_id\":\"s\",\"item_id\":\"i\",\"category\":\"c\",\"country\":\"ZZ\",\"device\":\"desktop\","
                + "\"price\":0.1e-2,\"impression_id\":\"x\"}",
    };

    /** The validator's row; asserts the fast path either declined or produced exactly it. */
    private static void agree(byte[] raw) {
        GenericRowData fast = FastEventParser.parse(raw);
        if (fast == null) {
            return;
        }
        EventValidator.Result slow = EventValidator.validate(raw);
        String text = new String(raw, StandardCharsets.UTF_8);
        assertNull(slow.reason, () -> "fast path accepted what the validator rejects: " + text + " -> " + slow);
        GenericRowData ref = ParseEvent.toRow(slow);
        for (int i = 0; i < 13; i++) {
            assertEquals(ref.getField(i), fast.getField(i), "field " + i + " of " + text);
        }
        assertEquals(features(ref), features(fast), text);
    }

    static Map<String, Double> features(RowData row) {
        ArrayData keys = row.getMap(13).keyArray();
        ArrayData values = row.getMap(13).valueArray();
        Map<String, Double> out = new LinkedHashMap<>();
        for (int i = 0; i < keys.size(); i++) {
            out.put(keys.getString(i).toString(), values.getDouble(i));
        }
        return out;
    }

    @Test
    void ordinaryEventsTakeTheFastPath() {
        for (String base : BASES) {
            byte[] raw = base.getBytes(StandardCharsets.UTF_8);
            assertNotNull(FastEventParser.parse(raw), base);
            agree(raw);
        }
        GenericRowData row = FastEventParser.parse(BASES[1].getBytes(StandardCharsets.UTF_8));
        assertEquals(0.0, row.getDouble(11)); // "-0" is 0.0, as Jackson's int node gives
        assertEquals(Double.valueOf(0.0), features(row).get("a"));
    }

    @Test
    void featuresAreABinaryMapAndTheLimitHolds() {
        GenericRowData row = FastEventParser.parse(BASES[0].getBytes(StandardCharsets.UTF_8));
        assertTrue(row.getMap(13) instanceof BinaryMapData, "features: " + row.getMap(13).getClass());
        assertEquals(Map.of("position", 4.0, "dwell", 2.502), features(row));
        for (int n : new int[] {9, 17, EventValidator.MAX_FEATURES, EventValidator.MAX_FEATURES + 1}) {
            StringBuilder f = new StringBuilder("{");
            for (int i = 0; i < n; i++) {
                f.append(i == 0 ? "" : ",").append("\"f").append(i).append("\":").append(i).append(".5");
            }
            String text = BASES[0].substring(0, BASES[0].indexOf("{\"position\"")) + f + "}}";
            byte[] raw = text.getBytes(StandardCharsets.UTF_8);
            if (n > EventValidator.MAX_FEATURES) {
                assertNull(FastEventParser.parse(raw), "more than MAX_FEATURES features");
                assertNotNull(EventValidator.validate(raw).reason);
            } else {
                RowData parsed = FastEventParser.parse(raw);
                assertNotNull(parsed, n + " features");
                assertEquals(n, features(parsed).size());
                assertEquals(n - 0.5, features(parsed).get("f" + (n - 1)));
                agree(raw);
            }
        }
    }

    @Test
    void sharedVectorsAgree() throws IOException {
        int fast = 0;
        for (EventValidatorTest.Vector v : EventValidatorTest.vectors()) {
            agree(v.raw());
            if (FastEventParser.parse(v.raw()) != null) {
                fast++;
                assertNull(v.reason(), v.name());
                assertEquals(v.eventTime(), FastEventParser.parse(v.raw()).getLong(4), v.name());
            }
        }
        assertTrue(fast >= 3, "the fast path took only " + fast + " shared vectors");
    }

    @Test
    void declinesWhatItDoesNotHandle() {
        String base = BASES[0];
        String[] others = {
            base.replace("\"price\":16.36", "\"price\":null"),
            base.replace("\"impression\"", "\"click\""), // click without impression_id
            base.replace("1700000000001", "\"2026-11-26T13:51:04Z\""),
            base.replace("\"user_id\"", "\"extra\":1,\"user_id\""),
            base.replace("\"US\"", "\"us\""),
            base.replace("u0056500", "u\\u0030"),
            base.replace("u0056500", "\u00fc"),
            base.replace("music", ""),
            base.replace("{\"position\"", "{\"position\":1,\"position\""),
            base + " x",
            base.replace("16.36", "016.36"),
            base.replace("16.36", "1e999"),
        };
        for (String raw : others) {
            assertNull(FastEventParser.parse(raw.getBytes(StandardCharsets.UTF_8)), raw);
        }
    }

    @Test
    void randomMutationsNeverPassWhatTheValidatorRejects() {
        Random rng = new Random(20261126);
        String alphabet = "{}[]:,\"\\ 0123456789.eE+-aZnull\t\n";
        int accepted = 0;
        for (int n = 0; n < 60_000; n++) {
            byte[] raw = BASES[n % BASES.length].getBytes(StandardCharsets.UTF_8);
            StringBuilder s = new StringBuilder(new String(raw, StandardCharsets.UTF_8));
            for (int m = 1 + rng.nextInt(3); m > 0 && s.length() > 0; m--) {
                int at = rng.nextInt(s.length());
                switch (rng.nextInt(4)) {
                    case 0 -> s.deleteCharAt(at);
                    case 1 -> s.insert(at, alphabet.charAt(rng.nextInt(alphabet.length())));
                    case 2 -> s.setCharAt(at, alphabet.charAt(rng.nextInt(alphabet.length())));
                    default -> {
                        int end = Math.min(s.length(), at + 1 + rng.nextInt(12));
                        s.insert(at, s.substring(at, end));
                    }
                }
            }
            byte[] mutated = s.toString().getBytes(StandardCharsets.UTF_8);
            agree(mutated);
            if (FastEventParser.parse(mutated) != null) {
                accepted++;
            }
        }
        assertTrue(accepted > 100, "mutations the fast path accepted: " + accepted); // it was exercised
    }

    @Test
    void plainAsciiAgreesWithTheByteByByteCheckAtEveryPositionAndLength() {
        Random rnd = new Random(7);
        byte[] special = {'\\', (byte) 0x80, (byte) 0xFF, (byte) 0xC3, 0x5B, 0x5D, 0x7F, 0x00, 0x5C ^ 0x01};
        for (int len = 0; len <= 40; len++) {
            for (int pos = -1; pos < len; pos++) {
                for (byte bad : special) {
                    byte[] raw = new byte[len];
                    for (int i = 0; i < len; i++) {
                        raw[i] = (byte) (0x20 + rnd.nextInt(0x5F)); // printable ASCII, may be a backslash too
                    }
                    if (pos >= 0) {
                        raw[pos] = bad;
                    }
                    boolean naive = true;
                    for (byte c : raw) {
                        naive &= c >= 0 && c != '\\';
                    }
                    assertEquals(naive, FastEventParser.plainAscii(raw), () -> java.util.Arrays.toString(raw));
                }
            }
        }
    }
}
