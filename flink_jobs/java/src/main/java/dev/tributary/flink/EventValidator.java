package dev.tributary.flink;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.LocalTime;
import java.time.ZoneOffset;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Validates and normalizes one raw {@code events.v1} message, following docs/event-validation.md
 * (the same rules as the Python implementation; both are checked against tests/vectors/events.jsonl).
 *
 * <p>Pure Java (no Flink); thread-safe.
 */
public final class EventValidator {

    public static final String INVALID_JSON = "invalid_json";
    public static final String NOT_OBJECT = "not_object";
    public static final String MISSING_FIELD = "missing_field";
    public static final String WRONG_TYPE = "wrong_type";
    public static final String OUT_OF_RANGE = "out_of_range";

    /** Largest event_time in ms: 9999-12-31T23:59:59.999Z. */
    public static final long MAX_EVENT_TIME_MS = 253402300799999L;
    public static final int MAX_FEATURES = 64;

    private static final Set<String> EVENT_TYPES = Set.of("impression", "click", "purchase");
    private static final Set<String> DEVICES = Set.of("mobile", "desktop", "tablet");

    /** RFC 3339 date-time: full-date "T" full-time, 'T'/'Z' case-insensitive, offset Z or +-hh:mm. */
    private static final Pattern RFC3339 = Pattern.compile(
            "([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                    + "(?:\\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))");

    /**
     * Default Jackson strictness (no NaN/Infinity literals, no comments, no leading zeros, ...),
     * plus: trailing tokens after the value are an error; floats stay doubles (so 1e3 is a
     * non-integral number node and 1e999 becomes +Infinity); integers use int/long/BigInteger.
     */
    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .disable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS)
            .build();

    private EventValidator() {}

    /** Outcome of {@link #validate(byte[])}: either a reason (+detail), or a normalized event. */
    public static final class Result {
        /** null when valid, else {@code <code>} or {@code <code>:<field>}. */
        public final String reason;
        public final String detail;
        public final String eventId;
        public final String eventType;
        /** ms since the epoch (UTC). */
        public final Long eventTime;
        public final String userId;
        public final String sessionId;
        public final String itemId;
        public final String category;
        public final String country;
        public final String device;
        public final Double price;
        /** null when absent (allowed on impressions only). */
        public final String impressionId;
        /** never null for a valid event (possibly empty), insertion-ordered. */
        public final Map<String, Double> features;

        private Result(String reason, String detail, String eventId, String eventType, Long eventTime,
                       String userId, String sessionId, String itemId, String category, String country,
                       String device, Double price, String impressionId, Map<String, Double> features) {
            this.reason = reason;
            this.detail = detail;
            this.eventId = eventId;
            this.eventType = eventType;
            this.eventTime = eventTime;
            this.userId = userId;
            this.sessionId = sessionId;
            this.itemId = itemId;
            this.category = category;
            this.country = country;
            this.device = device;
            this.price = price;
            this.impressionId = impressionId;
            this.features = features;
        }

        static Result invalid(String reason, String detail) {
            return new Result(reason, detail, null, null, null, null, null, null, null, null, null,
                    null, null, null);
        }

        public boolean isValid() {
            return reason == null;
        }

        @Override
        public String toString() {
            return isValid()
                    ? "Result{valid, event_id=" + eventId + ", event_time=" + eventTime + "}"
                    : "Result{" + reason + ": " + detail + "}";
        }
    }

    /** Thrown internally by the checks; carries the first failure. */
    private static final class Failure extends Exception {
        final String reason;

        Failure(String code, String field, String detail) {
            super(detail, null, false, false);
            this.reason = field == null ? code : code + ":" + field;
        }
    }

    private static boolean hasLoneSurrogate(JsonNode node) {
        if (node.isTextual()) {
            return loneSurrogate(node.textValue());
        }
        if (node.isObject()) {
            var it = node.fields();
            while (it.hasNext()) {
                var e = it.next();
                if (loneSurrogate(e.getKey()) || hasLoneSurrogate(e.getValue())) {
                    return true;
                }
            }
        } else if (node.isArray()) {
            for (JsonNode child : node) {
                if (hasLoneSurrogate(child)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean loneSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                return true;
            }
            if (Character.isLowSurrogate(c)) {
                return true;
            }
        }
        return false;
    }

    /** Validates one raw message (the Kafka record value). Never throws. */
    public static Result validate(byte[] raw) {
        if (raw == null) {
            return Result.invalid(INVALID_JSON, "message is null");
        }
        // 1. strict UTF-8, then JSON
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(raw))
                    .toString();
        } catch (CharacterCodingException e) {
            return Result.invalid(INVALID_JSON, "message is not valid UTF-8");
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            return Result.invalid(INVALID_JSON, "invalid JSON: " + firstLine(e.getOriginalMessage()));
        } catch (IOException | RuntimeException e) {
            return Result.invalid(INVALID_JSON, "invalid JSON: " + firstLine(e.getMessage()));
        }
        if (root == null || root.isMissingNode()) {
            return Result.invalid(INVALID_JSON, "invalid JSON: no content");
        }
        // Jackson accepts an escaped lone surrogate ("\ud800"); such a string cannot be
        // written back as UTF-8, so the contract (and orjson on the Python side) rejects it.
        if (hasLoneSurrogate(root)) {
            return Result.invalid(INVALID_JSON, "invalid JSON: unpaired surrogate escape in a string");
        }
        // 2. object
        if (!root.isObject()) {
            return Result.invalid(NOT_OBJECT, "expected a JSON object, got " + typeName(root));
        }
        try {
            // 3. required fields, in order; per field: missing, then type, then range
            String eventId = boundedString(root, "event_id", 64);
            String eventType = enumString(root, "event_type", EVENT_TYPES);
            long eventTime = eventTime(root);
            String userId = boundedString(root, "user_id", 128);
            String sessionId = boundedString(root, "session_id", 128);
            String itemId = boundedString(root, "item_id", 128);
            String category = boundedString(root, "category", 128);
            String country = country(root);
            String device = enumString(root, "device", DEVICES);
            double price = price(root);
            // 4. impression_id
            String impressionId;
            JsonNode imp = root.get("impression_id");
            if (imp == null || imp.isNull()) {
                if (!eventType.equals("impression")) {
                    throw new Failure(MISSING_FIELD, "impression_id",
                            "impression_id is required on " + eventType + " events");
                }
                impressionId = null;
            } else {
                impressionId = checkLength("impression_id", string(imp, "impression_id"), 128);
            }
            // 5. features
            Map<String, Double> features = features(root.get("features"));
            return new Result(null, null, eventId, eventType, eventTime, userId, sessionId, itemId,
                    category, country, device, price, impressionId, features);
        } catch (Failure f) {
            return Result.invalid(f.reason, f.getMessage());
        }
    }

    // ---------------------------------------------------------------- field checks

    private static JsonNode required(JsonNode obj, String field) throws Failure {
        JsonNode v = obj.get(field);
        if (v == null || v.isNull()) {
            throw new Failure(MISSING_FIELD, field, field + " is required");
        }
        return v;
    }

    private static String string(JsonNode v, String field) throws Failure {
        if (!v.isTextual()) {
            throw new Failure(WRONG_TYPE, field, field + " must be a string, got " + typeName(v));
        }
        return v.textValue();
    }

    private static String checkLength(String field, String s, int max) throws Failure {
        int n = s.codePointCount(0, s.length());
        if (n < 1 || n > max) {
            throw new Failure(OUT_OF_RANGE, field,
                    field + " must be 1-" + max + " characters, got " + n);
        }
        return s;
    }

    private static String boundedString(JsonNode obj, String field, int max) throws Failure {
        return checkLength(field, string(required(obj, field), field), max);
    }

    private static String enumString(JsonNode obj, String field, Set<String> allowed) throws Failure {
        String s = string(required(obj, field), field);
        if (!allowed.contains(s)) {
            throw new Failure(OUT_OF_RANGE, field,
                    field + " must be one of " + String.join(", ", new java.util.TreeSet<>(allowed))
                            + ", got " + quote(s));
        }
        return s;
    }

    private static String country(JsonNode obj) throws Failure {
        String s = string(required(obj, "country"), "country");
        if (s.length() != 2 || !isAsciiUpper(s.charAt(0)) || !isAsciiUpper(s.charAt(1))) {
            throw new Failure(OUT_OF_RANGE, "country",
                    "country must be two ASCII capital letters, got " + quote(s));
        }
        return s;
    }

    private static boolean isAsciiUpper(char c) {
        return c >= 'A' && c <= 'Z';
    }

    private static double price(JsonNode obj) throws Failure {
        JsonNode v = required(obj, "price");
        if (!v.isNumber()) { // booleans are BooleanNode, never numbers
            throw new Failure(WRONG_TYPE, "price", "price must be a number, got " + typeName(v));
        }
        double d = v.doubleValue(); // 1e999 -> +Infinity (DoubleNode or BigDecimal/BigInteger alike)
        if (!Double.isFinite(d) || !(d >= 0)) {
            throw new Failure(OUT_OF_RANGE, "price",
                    "price must be finite and >= 0, got " + v.asText());
        }
        return d;
    }

    private static long eventTime(JsonNode obj) throws Failure {
        JsonNode v = required(obj, "event_time");
        long ms;
        if (v.isIntegralNumber()) {
            if (v.isBigInteger()) { // Jackson only uses BigInteger beyond the long range
                throw new Failure(OUT_OF_RANGE, "event_time",
                        "event_time must be 0-" + MAX_EVENT_TIME_MS + " ms, got " + v.asText());
            }
            ms = v.longValue();
        } else if (v.isTextual()) {
            ms = parseRfc3339(v.textValue());
        } else if (v.isNumber()) {
            throw new Failure(WRONG_TYPE, "event_time",
                    "event_time must be an integer (no fraction, no exponent) or an RFC 3339 string, got "
                            + v.asText());
        } else {
            throw new Failure(WRONG_TYPE, "event_time",
                    "event_time must be an integer or an RFC 3339 string, got " + typeName(v));
        }
        if (ms < 0 || ms > MAX_EVENT_TIME_MS) {
            throw new Failure(OUT_OF_RANGE, "event_time",
                    "event_time must be 0-" + MAX_EVENT_TIME_MS + " ms, got " + ms);
        }
        return ms;
    }

    /** RFC 3339 date-time to epoch ms (fraction truncated to ms). */
    static long parseRfc3339(String s) throws Failure {
        Matcher m = RFC3339.matcher(s);
        if (!m.matches()) {
            throw new Failure(OUT_OF_RANGE, "event_time",
                    "event_time string must be an RFC 3339 date-time with Z or +-hh:mm offset, got "
                            + quote(s));
        }
        try {
            LocalDate date = LocalDate.of(num(m, 1), num(m, 2), num(m, 3));
            LocalTime time = LocalTime.of(num(m, 4), num(m, 5), num(m, 6));
            String frac = m.group(7);
            int millis = 0;
            if (frac != null) {
                String f3 = frac.length() >= 3 ? frac.substring(0, 3) : (frac + "00").substring(0, 3);
                millis = Integer.parseInt(f3);
            }
            long offsetSeconds = 0;
            if (m.group(8) == null) {
                int oh = num(m, 10);
                int om = num(m, 11);
                if (oh > 23 || om > 59) {
                    throw new DateTimeException("offset out of range");
                }
                offsetSeconds = (oh * 3600L + om * 60L) * (m.group(9).equals("-") ? -1 : 1);
            }
            long epochSeconds = LocalDateTime.of(date, time).toEpochSecond(ZoneOffset.UTC) - offsetSeconds;
            return epochSeconds * 1000L + millis;
        } catch (DateTimeException e) {
            throw new Failure(OUT_OF_RANGE, "event_time",
                    "event_time is not a valid RFC 3339 date-time: " + quote(s));
        }
    }

    private static int num(Matcher m, int group) {
        return Integer.parseInt(m.group(group));
    }

    private static Map<String, Double> features(JsonNode v) throws Failure {
        if (v == null || v.isNull()) {
            return Collections.emptyMap();
        }
        if (!v.isObject()) {
            throw new Failure(WRONG_TYPE, "features", "features must be an object, got " + typeName(v));
        }
        if (v.size() > MAX_FEATURES) {
            throw new Failure(OUT_OF_RANGE, "features",
                    "features must have at most " + MAX_FEATURES + " entries, got " + v.size());
        }
        Map<String, Double> out = new LinkedHashMap<>();
        Iterator<Map.Entry<String, JsonNode>> it = v.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            JsonNode fv = e.getValue();
            if (!fv.isNumber()) {
                throw new Failure(WRONG_TYPE, "features",
                        "features[" + quote(e.getKey()) + "] must be a number, got " + typeName(fv));
            }
            double d = fv.doubleValue();
            if (!Double.isFinite(d)) {
                throw new Failure(OUT_OF_RANGE, "features",
                        "features[" + quote(e.getKey()) + "] must be finite, got " + fv.asText());
            }
            out.put(e.getKey(), d);
        }
        return out;
    }

    // ---------------------------------------------------------------- helpers

    private static String typeName(JsonNode v) {
        return v.getNodeType().name().toLowerCase(Locale.ROOT);
    }

    private static String quote(String s) {
        final int max = 40;
        if (s.codePointCount(0, s.length()) > max) {
            s = s.substring(0, s.offsetByCodePoints(0, max)) + "...";
        }
        return "\"" + s + "\"";
    }

    private static String firstLine(String msg) {
        if (msg == null) {
            return "parse error";
        }
        int nl = msg.indexOf('\n');
        return nl < 0 ? msg : msg.substring(0, nl);
    }
}
