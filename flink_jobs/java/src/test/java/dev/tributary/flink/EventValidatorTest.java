package dev.tributary.flink;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.data.RowData;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EventValidatorTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    /** One line of tests/vectors/events.jsonl. */
    record Vector(String name, byte[] raw, String reason, Long eventTime) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<Vector> vectors() throws IOException {
        String prop = System.getProperty("tributary.vectors", "../../tests/vectors/events.jsonl");
        Path path = Paths.get(prop);
        List<Vector> out = new ArrayList<>();
        for (String line : Files.readAllLines(path, StandardCharsets.UTF_8)) {
            if (line.isBlank()) {
                continue;
            }
            JsonNode v = JSON.readTree(line);
            byte[] raw = v.hasNonNull("raw_hex")
                    ? HexFormat.of().parseHex(v.get("raw_hex").asText())
                    : v.get("raw").asText().getBytes(StandardCharsets.UTF_8);
            String reason = v.hasNonNull("reason") ? v.get("reason").asText() : null;
            Long eventTime = v.hasNonNull("event_time") ? v.get("event_time").asLong() : null;
            out.add(new Vector(v.get("name").asText(), raw, reason, eventTime));
        }
        return out;
    }

    static Stream<Arguments> vectorArgs() throws IOException {
        return vectors().stream().map(v -> Arguments.of(v));
    }

    @Test
    void vectorsFileIsNotEmpty() throws IOException {
        List<Vector> vs = vectors();
        assertTrue(vs.size() >= 30, "expected the shared vectors, got " + vs.size());
        assertTrue(vs.stream().anyMatch(v -> v.reason() == null));
        assertTrue(vs.stream().anyMatch(v -> v.reason() != null));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("vectorArgs")
    void sharedVector(Vector v) {
        EventValidator.Result r = EventValidator.validate(v.raw());
        assertEquals(v.reason(), r.reason, () -> v.name() + ": " + r);
        if (v.reason() == null) {
            assertTrue(r.isValid());
            assertEquals(v.eventTime(), r.eventTime, v.name());
            assertNull(r.detail);
            assertNotNull(r.features);
        } else {
            assertFalse(r.isValid());
            assertNotNull(r.detail);
            assertFalse(r.detail.isEmpty());
            assertNull(r.eventId);
            assertNull(r.eventTime);
        }
    }

    // ------------------------------------------------------------ extra edge cases (Java side)

    private static String event(String eventTime) {
        return "{\"event_id\":\"e\",\"event_type\":\"impression\",\"event_time\":" + eventTime
                + ",\"user_id\":\"u\",\"session_id\":\"s\",\"item_id\":\"i\",\"category\":\"c\","
                + "\"country\":\"US\",\"device\":\"mobile\",\"price\":1}";
    }

    private static EventValidator.Result check(String raw) {
        return EventValidator.validate(raw.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void eventTimeNumbers() {
        assertEquals("wrong_type:event_time", check(event("1e3")).reason);
        assertEquals("wrong_type:event_time", check(event("1E3")).reason);
        assertEquals("wrong_type:event_time", check(event("1.0")).reason);
        assertEquals("wrong_type:event_time", check(event("1e999")).reason);
        assertEquals("out_of_range:event_time", check(event("99999999999999999999999")).reason);
        assertEquals("out_of_range:event_time", check(event("253402300800000")).reason);
        assertEquals(253402300799999L, check(event("253402300799999")).eventTime);
        assertEquals(0L, check(event("-0")).eventTime);
    }

    @Test
    void eventTimeStrings() {
        assertEquals(1795701064123L, check(event("\"2026-11-26t13:51:04.123999999999z\"")).eventTime);
        assertEquals(1795701064100L, check(event("\"2026-11-26T13:51:04.1Z\"")).eventTime);
        assertEquals(1795701064000L, check(event("\"2026-11-26T08:51:04-05:00\"")).eventTime);
        assertEquals(1795701064000L, check(event("\"2026-11-27T13:21:04+23:30\"")).eventTime);
        assertEquals("out_of_range:event_time", check(event("\"2026-02-30T00:00:00Z\"")).reason);
        assertEquals("out_of_range:event_time", check(event("\"2026-11-26 13:51:04Z\"")).reason);
        assertEquals("out_of_range:event_time", check(event("\"2026-11-26T24:00:00Z\"")).reason);
        assertEquals("out_of_range:event_time", check(event("\"2026-11-26T13:51:04+0100\"")).reason);
        assertEquals("out_of_range:event_time", check(event("\"1969-12-31T23:59:59Z\"")).reason);
    }

    @Test
    void jsonStrictness() {
        assertEquals("invalid_json", check(event("1") + " {}").reason);
        assertEquals("invalid_json", check(event("1") + "x").reason);
        assertEquals("invalid_json", check("   ").reason);
        assertEquals("invalid_json", check(event("Infinity")).reason);
        assertEquals("invalid_json", check(event("01")).reason);
        assertEquals("invalid_json", check("\uFEFF" + event("1")).reason);
        assertNull(check(" \n" + event("1") + "\r\n\t").reason);
        assertEquals("invalid_json", EventValidator.validate(null).reason);
    }

    @Test
    void lengthsCountCodePoints() {
        String id64 = "\uD83D\uDE00".repeat(64); // 64 code points, 128 UTF-16 units
        String raw = event("1").replace("\"event_id\":\"e\"", "\"event_id\":\"" + id64 + "\"");
        assertNull(check(raw).reason);
        String raw65 = event("1").replace("\"event_id\":\"e\"", "\"event_id\":\"" + id64 + "x\"");
        assertEquals("out_of_range:event_id", check(raw65).reason);
    }

    @Test
    void duplicateKeyKeepsLast() {
        assertNull(check(event("1").replace("{", "{\"event_id\":42,")).reason);
        assertEquals("out_of_range:country", check(event("1").replace("}", ",\"country\":\"USA\"}")).reason);
    }

    // ------------------------------------------------------------ the Flink UDF

    @Test
    void parseEventValid() throws IOException {
        Vector v = vectors().stream().filter(x -> x.name().startsWith("valid purchase")).findFirst().orElseThrow();
        RowData row = new ParseEvent().eval(v.raw());
        assertEquals(14, row.getArity());
        assertTrue(row.isNullAt(0));
        assertTrue(row.isNullAt(1));
        assertEquals("e3", row.getString(2).toString());
        assertEquals("purchase", row.getString(3).toString());
        assertEquals(1795701064000L, row.getLong(4));
        assertEquals("u1", row.getString(5).toString());
        assertEquals("DE", row.getString(9).toString());
        assertEquals("tablet", row.getString(10).toString());
        assertEquals(3.0, row.getDouble(11));
        assertEquals("e1", row.getString(12).toString());
        assertEquals(Map.of("dwell", 1.5, "rank", 3.0), FastEventParserTest.features(row));
        assertTrue(new ParseEvent().isDeterministic());
    }

    @Test
    void parseEventInvalid() {
        RowData row = new ParseEvent().eval("{\"a\":1}".getBytes(StandardCharsets.UTF_8));
        assertEquals(14, row.getArity());
        assertEquals("missing_field:event_id", row.getString(0).toString());
        assertFalse(row.isNullAt(1));
        for (int i = 2; i < 14; i++) {
            assertTrue(row.isNullAt(i), "field " + i);
        }
    }
}
