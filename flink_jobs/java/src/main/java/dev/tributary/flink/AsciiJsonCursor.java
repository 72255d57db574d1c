package dev.tributary.flink;

import java.nio.charset.StandardCharsets;

/**
 * A cursor over the bytes of a JSON message known to be ASCII without escapes (the caller checked),
 * for {@link FastEventParser}: whitespace, strings, numbers by the JSON grammar. Anything it does
 * not accept throws {@link Bail}, and the caller hands the message to {@link EventValidator}.
 */
abstract class AsciiJsonCursor {

    static final int MAX_NUMBER_CHARS = 32;

    protected final byte[] b;
    protected int p;

    AsciiJsonCursor(byte[] raw) {
        this.b = raw;
    }

    /** Leaves the fast path (no stack trace: cheap). */
    static final class Bail extends Exception {
        static final Bail INSTANCE = new Bail();

        private Bail() {
            super(null, null, false, false);
        }
    }

    static Bail bail() {
        return Bail.INSTANCE;
    }

    /** Advances past the closing quote; returns its position. No escapes can occur (checked). */
    final int stringEnd() throws Bail {
        while (p < b.length) {
            byte c = b[p++];
            if (c == '"') {
                return p - 1;
            }
            if (c < 0x20) {
                throw bail(); // control characters must be escaped in JSON
            }
        }
        throw bail();
    }

    /** Any JSON number, as the validator reads it (Jackson: Double.parseDouble of the text). */
    final double decimal() throws Bail {
        int start = p;
        boolean integral = number();
        int len = p - start;
        if (len > MAX_NUMBER_CHARS) {
            throw bail();
        }
        String text = new String(b, start, len, StandardCharsets.ISO_8859_1);
        // Jackson reads an integer as an int/long node, so "-0" is 0.0, not -0.0.
        return integral && len <= 18 ? (double) Long.parseLong(text) : Double.parseDouble(text);
    }

    /**
     * Consumes a number by the JSON grammar {@code -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?};
     * returns true when it is an integer (no fraction, no exponent).
     */
    final boolean number() throws Bail {
        if (peek() == '-') {
            p++;
        }
        int c = peek();
        if (c == '0') {
            p++;
            if (isDigit(peek())) {
                throw bail(); // leading zero: invalid JSON
            }
        } else if (isDigit(c)) {
            while (isDigit(peek())) {
                p++;
            }
        } else {
            throw bail();
        }
        boolean integral = true;
        if (peek() == '.') {
            p++;
            digits();
            integral = false;
        }
        if (peek() == 'e' || peek() == 'E') {
            p++;
            if (peek() == '+' || peek() == '-') {
                p++;
            }
            digits();
            integral = false;
        }
        return integral;
    }

    final void digits() throws Bail {
        if (!isDigit(peek())) {
            throw bail();
        }
        while (isDigit(peek())) {
            p++;
        }
    }

    static boolean isDigit(int c) {
        return c >= '0' && c <= '9';
    }

    /** JSON whitespace only (what Jackson accepts between tokens). */
    final void ws() {
        while (p < b.length) {
            byte c = b[p];
            if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                return;
            }
            p++;
        }
    }

    final int peek() {
        return p < b.length ? b[p] : -1;
    }

    final int next() throws Bail {
        if (p >= b.length) {
            throw bail();
        }
        return b[p++];
    }

    final void expect(char c) throws Bail {
        if (next() != c) {
            throw bail();
        }
    }

}
