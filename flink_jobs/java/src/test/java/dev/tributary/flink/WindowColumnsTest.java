package dev.tributary.flink;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.apache.flink.table.data.GenericMapData;
import org.apache.flink.table.data.MapData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;

/**
 * PackWindow writes, for the shared vectors' events, exactly the bytes the Python encoder writes
 * (tests/vectors/window_columns.json; tests/unit/test_window_columns.py checks the Python side),
 * and its accumulator survives a checkpoint (serializer round trip) and keeps accumulating.
 */
class WindowColumnsTest {

    private static JsonNode vectors() throws IOException {
        Path events = Path.of(System.getProperty("tributary.vectors"));
        JsonNode doc = new ObjectMapper().readTree(Files.readString(events.resolveSibling("window_columns.json")));
        SAMPLE_K = doc.get("sample_k").asInt();
        return doc;
    }

    private static void add(PackWindow f, WindowColumns acc, JsonNode e) {
        Map<StringData, Double> features = new LinkedHashMap<>();
        JsonNode fs = e.get("features");
        if (fs != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = fs.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> kv = it.next();
                features.put(StringData.fromString(kv.getKey()), kv.getValue().asDouble());
            }
        }
        MapData map = fs == null ? null : new GenericMapData(features);
        f.accumulate(acc, e.get("event_time").asLong(), s(e, "user_id"), s(e, "session_id"), s(e, "item_id"),
                s(e, "category"), s(e, "country"), s(e, "device"), e.get("price").asDouble(), map,
                e.get("raw").asText().getBytes(StandardCharsets.UTF_8), SAMPLE_K);
    }

    /** The reservoir k the vectors were packed with (small, so their groups overflow it). */
    private static int SAMPLE_K;

    private static StringData s(JsonNode e, String name) {
        // as the window operator sees it after the network: binary strings over fresh bytes
        return StringData.fromBytes(e.get(name).asText().getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void packsTheSharedVectorsByteForByte() throws IOException {
        JsonNode doc = vectors();
        PackWindow f = new PackWindow();
        WindowColumns acc = f.createAccumulator();
        for (JsonNode e : doc.get("events")) {
            add(f, acc, e);
        }
        HexFormat hex = HexFormat.of();
        assertEquals(doc.get("packed_hex").asText(), hex.formatHex(acc.pack()));
        RowData out = f.getValue(acc);
        assertEquals(doc.get("identity_hex").asText(), hex.formatHex(out.getBinary(0)));
        assertEquals(doc.get("values_hex").asText(), hex.formatHex(out.getBinary(1)));
    }

    @Test
    void survivesACheckpointAndKeepsAccumulating() throws IOException {
        JsonNode events = vectors().get("events");
        PackWindow f = new PackWindow();
        WindowColumns whole = f.createAccumulator();
        WindowColumns half = f.createAccumulator();
        int n = events.size();
        for (int i = 0; i < n / 2; i++) {
            add(f, whole, events.get(i));
            add(f, half, events.get(i));
        }
        WindowColumnsSerializer serializer = new WindowColumnsSerializer();
        DataOutputSerializer out = new DataOutputSerializer(64);
        serializer.serialize(half, out);
        WindowColumns restored = serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
        WindowColumns copied = serializer.copy(half);
        assertNotSame(half, copied);
        for (int i = n / 2; i < n; i++) {
            add(f, whole, events.get(i));
            add(f, restored, events.get(i));
            add(f, copied, events.get(i));
        }
        assertArrayEquals(whole.pack(), restored.pack());
        assertArrayEquals(whole.pack(), copied.pack());
        assertEquals(n / 2, half.rows());  // the copy did not write through
    }

    @Test
    void dictionaryNumbersValuesByFirstAppearanceThroughRehashes() {
        ByteDictionary d = new ByteDictionary();
        int n = 50_000;
        byte[] row = new byte[16 + 8 * n];  // values inside one larger segment, at an offset, as in a row
        for (int i = 0; i < n; i++) {
            byte[] v = String.format("u%07d", i).getBytes(StandardCharsets.US_ASCII);
            System.arraycopy(v, 0, row, 16 + 8 * i, 8);
        }
        org.apache.flink.core.memory.MemorySegment segment = org.apache.flink.core.memory.MemorySegmentFactory.wrap(row);
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < n; i++) {
                StringData s = org.apache.flink.table.data.binary.BinaryStringData.fromAddress(
                        new org.apache.flink.core.memory.MemorySegment[] {segment}, 16 + 8 * i, 8);
                assertEquals(i, d.code(s));
            }
        }
        assertEquals(n, d.code((StringData) null));
        assertEquals(n, d.code((StringData) null));
        assertEquals(n + 1, d.code(StringData.fromString("ü")));
        assertEquals("u0012345", new String(d.value(12345), StandardCharsets.US_ASCII));
        assertEquals(null, d.value(n));
        ByteDictionary copy = d.copy();
        assertEquals(n + 2, copy.code(StringData.fromString("new")));
        assertEquals(n + 2, d.code(StringData.fromString("other")));  // the copy is independent
    }

    /** Brute force over many events (compactions included): the candidates are exactly the union
     * of every group's k smallest priorities, and a checkpoint mid-way changes nothing. */
    @Test
    void sampleCandidatesAreTheUnionOfEveryGroupsBottomK() {
        java.util.Random rng = new java.util.Random(5);
        int n = 30_000;
        int k = 4;
        String[][] values = {{"a", "b", "c"}, {"US", "DE"}, {"mobile", "desktop", "tablet", "tv"}};
        WindowColumns w = new WindowColumns();
        WindowColumns restored = null;
        long[] priorities = new long[n];
        int[][] groupOf = new int[n][3];
        for (int i = 0; i < n; i++) {
            StringData[] row = new StringData[6];
            for (int c = 0; c < 3; c++) {
                row[c] = StringData.fromString("x");
                groupOf[i][c] = rng.nextInt(values[c].length);
                row[3 + c] = StringData.fromString(values[c][groupOf[i][c]]);
            }
            byte[] raw = ("{\"event_id\":\"e" + i + "-" + rng.nextLong() + "\"}").getBytes(StandardCharsets.UTF_8);
            priorities[i] = SampleCandidates.priority(raw);
            w.add(i, row, 1.0, null, raw, k);
            if (restored != null) {
                restored.add(i, row, 1.0, null, raw, k);
            }
            if (i == n / 3) {
                restored = WindowColumns.unpack(w.pack());
            }
        }
        java.util.TreeSet<Integer> expected = new java.util.TreeSet<>();
        for (int c = -1; c < 3; c++) {
            int groups = c < 0 ? 1 : values[c].length;
            for (int g = 0; g < groups; g++) {
                final int column = c;
                final int group = g;
                java.util.stream.IntStream.range(0, n)
                        .filter(i -> column < 0 || groupOf[i][column] == group)
                        .boxed()
                        .sorted(java.util.Comparator.comparingLong((Integer i) -> priorities[i]))
                        .limit(k)
                        .forEach(expected::add);
            }
        }
        // the codes are codes of first appearance, not the indexes above: groups are the same sets
        int[] got = candidateRows(w.pack(WindowColumns.VALUES));
        assertArrayEquals(expected.stream().mapToInt(Integer::intValue).toArray(), got);
        assertArrayEquals(w.pack(), restored.pack());
        assertEquals(w.pack().length, w.copy().pack().length);
    }

    private static int[] candidateRows(byte[] valuesSection) {
        java.nio.ByteBuffer in = java.nio.ByteBuffer.wrap(valuesSection).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        in.position(2);
        int rows = in.getInt();
        in.getLong();
        for (int c = 3; c < 6; c++) {  // the dimension columns: dictionary, then codes
            int distinct = in.getInt();
            in.getInt();
            int[] offsets = new int[distinct + 1];
            in.asIntBuffer().get(offsets);
            in.position(in.position() + 4 * (distinct + 1) + offsets[distinct] + 4 * rows);
        }
        in.position(in.position() + 8 * rows);
        int features = in.getInt();
        for (int f = 0; f < features; f++) {
            in.position(in.position() + in.getInt());
            in.position(in.position() + 8 * in.getInt());
        }
        in.getInt();  // k
        int[] candidates = new int[in.getInt()];
        in.asIntBuffer().get(candidates);
        return candidates;
    }

    @Test
    void aVersion1CheckpointStillRestores() {
        WindowColumns w = new WindowColumns();
        byte[] raw = "{\"event_id\":\"one\"}".getBytes(StandardCharsets.UTF_8);
        StringData[] row = new StringData[6];
        java.util.Arrays.fill(row, StringData.fromString("v"));
        w.add(7L, row, 2.5, null, raw);
        byte[] v2 = w.pack();
        // version 1 = the same window with every raw event where the candidates are now
        byte[] v1 = java.nio.ByteBuffer.allocate(v2.length - 20)
                .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                .put((byte) 1)
                .put(v2, 1, v2.length - 1 - (8 + 4 + 8 + 8 + raw.length))  // up to k
                .putInt(0).putInt(raw.length).put(raw)
                .array();
        assertArrayEquals(v2, WindowColumns.unpack(v1).pack());
    }

    @Test
    void anEmptyWindowRoundTrips() {
        WindowColumns empty = new WindowColumns();
        assertArrayEquals(empty.pack(), WindowColumns.unpack(empty.pack()).pack());
    }
}
