package dev.tributary.flink;

import java.nio.ByteBuffer;
import java.util.Arrays;
import org.apache.flink.core.memory.MemorySegment;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;

/**
 * Distinct byte strings, numbered in order of first appearance, stored back to back (Arrow's
 * layout: value {@code c} is {@code data[end(c-1) .. end(c))}). Append-only.
 *
 * <p>Its own open-addressing index rather than a {@code HashMap<StringData, Integer>}: Flink's
 * {@code BinaryStringData.hashCode} hashes whole 4-byte words, so generator ids of equal length
 * collided into tree bins (7 % of the window thread in a profile), and a lookup here reads the
 * row's bytes in place instead of allocating a key.
 */
final class ByteDictionary {

    byte[] data = new byte[1024];
    int dataLength;
    int[] ends = new int[64];
    int[] hashes = new int[64];
    int size;
    int nullCode = -1;
    /** code + 1 per slot, 0 = empty; at most half full. */
    int[] slots = new int[128];

    /** The code of {@code s} (null has a code of its own), added if new. */
    int code(StringData s) {
        if (s == null) {
            if (nullCode < 0) {
                nullCode = append(null, 0, 0, 0);
            }
            return nullCode;
        }
        if (s instanceof BinaryStringData b) {
            MemorySegment[] segments = b.getSegments();
            if (segments.length == 1 && !segments[0].isOffHeap()) {
                return code(segments[0].getArray(), b.getOffset(), b.getSizeInBytes());
            }
        }
        byte[] bytes = s.toBytes();
        return code(bytes, 0, bytes.length);
    }

    int code(byte[] a, int off, int len) {
        int h = hash(a, off, len);
        int mask = slots.length - 1;
        for (int i = h & mask; ; i = (i + 1) & mask) {
            int slot = slots[i];
            if (slot == 0) {
                int c = append(a, off, len, h);
                slots[i] = c + 1;
                if (2 * size > slots.length) {
                    rehash(slots.length * 2);
                }
                return c;
            }
            int c = slot - 1;
            if (hashes[c] == h && c != nullCode) {
                int start = c == 0 ? 0 : ends[c - 1];
                if (Arrays.equals(data, start, ends[c], a, off, off + len)) {
                    return c;
                }
            }
        }
    }

    /** Value {@code c}'s bytes (null for the null value). */
    byte[] value(int c) {
        return c == nullCode ? null : Arrays.copyOfRange(data, c == 0 ? 0 : ends[c - 1], ends[c]);
    }

    private int append(byte[] a, int off, int len, int h) {
        if (size == ends.length) {
            ends = Arrays.copyOf(ends, size * 2);
            hashes = Arrays.copyOf(hashes, size * 2);
        }
        if (dataLength + len > data.length) {
            data = Arrays.copyOf(data, Math.max(data.length * 2, dataLength + len));
        }
        if (len > 0) {
            System.arraycopy(a, off, data, dataLength, len);
        }
        dataLength += len;
        ends[size] = dataLength;
        hashes[size] = h;
        return size++;
    }

    private void rehash(int capacity) {
        slots = new int[capacity];
        int mask = capacity - 1;
        for (int c = 0; c < size; c++) {
            if (c == nullCode) {
                continue;
            }
            int i = hashes[c] & mask;
            while (slots[i] != 0) {
                i = (i + 1) & mask;
            }
            slots[i] = c + 1;
        }
    }

    private static int hash(byte[] a, int off, int len) {
        int h = len;
        for (int i = off, end = off + len; i < end; i++) {
            h = 31 * h + a[i];
        }
        // murmur3's finalizer: the low bits pick the slot, so spread the high ones down
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        return h ^ (h >>> 16);
    }

    /** A deep copy (a checkpoint's copy-on-write: the copy stays live, the original is written out). */
    ByteDictionary copy() {
        ByteDictionary d = new ByteDictionary();
        d.data = Arrays.copyOf(data, data.length);
        d.dataLength = dataLength;
        d.ends = Arrays.copyOf(ends, ends.length);
        d.hashes = Arrays.copyOf(hashes, hashes.length);
        d.size = size;
        d.nullCode = nullCode;
        d.slots = Arrays.copyOf(slots, slots.length);
        return d;
    }

    int packedSize() {
        return 8 + 4 * (size + 1) + dataLength;
    }

    /** i32 distinct | i32 null code | (distinct + 1) x i32 offset | bytes. */
    void pack(ByteBuffer out) {
        out.putInt(size).putInt(nullCode).putInt(0);
        WindowColumns.putInts(out, ends, size);
        out.put(data, 0, dataLength);
    }

    static ByteDictionary unpack(ByteBuffer in) {
        ByteDictionary d = new ByteDictionary();
        int distinct = in.getInt();
        int nullCode = in.getInt();
        int[] offsets = new int[distinct + 1];
        in.asIntBuffer().get(offsets);
        in.position(in.position() + 4 * (distinct + 1));
        byte[] bytes = new byte[offsets[distinct]];
        in.get(bytes);
        for (int c = 0; c < distinct; c++) {
            if (c == nullCode) {
                d.code((StringData) null);
            } else {
                d.code(bytes, offsets[c], offsets[c + 1] - offsets[c]);
            }
        }
        return d;
    }
}
