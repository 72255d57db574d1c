package dev.tributary.flink;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The raw events a window's reservoir samples can still need, and nothing more.
 *
 * <p>Every event gets a priority, a 63-bit hash of its bytes ({@link #priority}): for distinct
 * events, independent and uniform. The {@code k} events of a group with the smallest priorities
 * are a uniform sample of it without replacement (bottom-k); {@code ReservoirSample.from_priorities}
 * in {@code app/sketches/reservoir.py} builds the sample from them. This class only drops events
 * that cannot be among any group's k smallest: the whole window and each value of each dimension
 * column (category, country, device) is a group, and an event stays a candidate while it is in
 * the bottom k of one of its four groups. What is left when the window fires is the union of the
 * groups' bottom k, whatever the order the events came in.
 *
 * <p>Why on the JVM: carrying every raw event (~90 % of a window's bytes) through the window
 * state, its checkpoints, the packed window and the Python worker cost about as much as
 * everything else the job does (docs/flink-design.md, seventh round). A window of 20,000 events
 * keeps ~4,000 candidates with four dimensions, ~100 with one.
 */
final class SampleCandidates {

    /** The dimension columns (WindowColumns.STRING_COLUMNS indexes) whose values are groups. */
    static final int[] GROUP_COLUMNS = {3, 4, 5};

    private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
    private static final byte[] EMPTY = new byte[0];

    final int k;
    private final Heap all;
    /** An event's four groups (scratch, reused). */
    private final Heap[] groups = new Heap[1 + GROUP_COLUMNS.length];
    private Heap[][] byValue = new Heap[GROUP_COLUMNS.length][8];
    /** Candidates in the order they came (so in row order): live ones have refs > 0. */
    private int count;
    private int live;
    private int[] rows = new int[64];
    private long[] priorities = new long[64];
    private int[] refs = new int[64];
    private int[] ends = new int[64];
    private byte[] raw = new byte[4096];

    SampleCandidates(int k) {
        if (k < 1) {
            throw new IllegalArgumentException("sample size must be >= 1, got " + k);
        }
        this.k = k;
        this.all = new Heap(k);
    }

    /**
     * The priority of an event: a 64-bit multiply-rotate hash of its bytes, 8 at a time, with the
     * splitmix64 finalizer, shifted to 63 bits (flink_jobs/window_columns.py computes the same).
     */
    static long priority(byte[] b) {
        long h = 0x9E3779B97F4A7C15L ^ b.length;
        int i = 0;
        for (; i + 8 <= b.length; i += 8) {
            h = mix(h, (long) LONGS.get(b, i));
        }
        long tail = 0;
        for (int shift = 0; i < b.length; i++, shift += 8) {
            tail |= (b[i] & 0xFFL) << shift;
        }
        h = mix(h, tail);
        h ^= h >>> 30;
        h *= 0xBF58476D1CE4E5B9L;
        h ^= h >>> 27;
        h *= 0x94D049BB133111EBL;
        h ^= h >>> 31;
        return h >>> 1;
    }

    private static long mix(long h, long word) {
        return Long.rotateLeft(h ^ (word * 0xC2B2AE3D27D4EB4FL), 29) * 0x9E3779B97F4A7C15L;
    }

    /** Row {@code row} with these dimension codes (GROUP_COLUMNS order) and raw bytes. Called
     * once per event: no allocation but the candidate's bytes. */
    void offer(int row, int code0, int code1, int code2, byte[] event) {
        byte[] bytes = event == null ? EMPTY : event;
        long p = priority(bytes);
        Heap[] groups = this.groups;
        groups[0] = all;
        groups[1] = heap(0, code0);
        groups[2] = heap(1, code1);
        groups[3] = heap(2, code2);
        int accepted = 0;
        for (int g = 0; g < groups.length; g++) {
            if (groups[g].accepts(p)) {
                accepted |= 1 << g;
            }
        }
        if (accepted == 0) {
            return;
        }
        int id = add(row, p, bytes);
        for (int g = 0; g < groups.length; g++) {
            if ((accepted & (1 << g)) != 0) {
                refs[id]++;
                int evicted = groups[g].push(p, id);
                if (evicted >= 0 && --refs[evicted] == 0) {
                    live--;
                }
            }
        }
        if (count - live > Math.max(live, 1024)) {
            compact();
        }
    }

    private Heap heap(int column, int code) {
        Heap[] heaps = byValue[column];
        if (code >= heaps.length) {
            heaps = byValue[column] = Arrays.copyOf(heaps, Math.max(code + 1, heaps.length * 2));
        }
        if (heaps[code] == null) {
            heaps[code] = new Heap(k);
        }
        return heaps[code];
    }

    private int add(int row, long p, byte[] bytes) {
        if (count == rows.length) {
            int capacity = count * 2;
            rows = Arrays.copyOf(rows, capacity);
            priorities = Arrays.copyOf(priorities, capacity);
            refs = Arrays.copyOf(refs, capacity);
            ends = Arrays.copyOf(ends, capacity);
        }
        int start = count == 0 ? 0 : ends[count - 1];
        if (start + bytes.length > raw.length) {
            raw = Arrays.copyOf(raw, Math.max(raw.length * 2, start + bytes.length));
        }
        System.arraycopy(bytes, 0, raw, start, bytes.length);
        rows[count] = row;
        priorities[count] = p;
        refs[count] = 0;
        ends[count] = start + bytes.length;
        live++;
        return count++;
    }

    /** Drops the candidates no group holds any more (their ids change; heaps are renumbered). */
    private void compact() {
        int[] renumbered = new int[count];
        int next = 0;
        int length = 0;
        for (int id = 0; id < count; id++) {
            int start = id == 0 ? 0 : ends[id - 1];
            int size = ends[id] - start;
            if (refs[id] == 0) {
                renumbered[id] = -1;
                continue;
            }
            System.arraycopy(raw, start, raw, length, size);
            length += size;
            rows[next] = rows[id];
            priorities[next] = priorities[id];
            refs[next] = refs[id];
            ends[next] = length;
            renumbered[id] = next++;
        }
        count = next;
        all.renumber(renumbered);
        for (Heap[] heaps : byValue) {
            for (Heap h : heaps) {
                if (h != null) {
                    h.renumber(renumbered);
                }
            }
        }
    }

    int live() {
        return live;
    }

    /** Bytes {@link #pack} writes. */
    int packedSize() {
        int bytes = 0;
        for (int id = 0; id < count; id++) {
            if (refs[id] > 0) {
                bytes += ends[id] - (id == 0 ? 0 : ends[id - 1]);
            }
        }
        return 8 + live * (4 + 8 + 4) + 4 + bytes;
    }

    /** {@code i32 k | i32 n | n x i32 row | n x i64 priority | (n + 1) x i32 offset | raw}, live candidates in row order. */
    void pack(ByteBuffer out) {
        out.putInt(k).putInt(live);
        for (int id = 0; id < count; id++) {
            if (refs[id] > 0) {
                out.putInt(rows[id]);
            }
        }
        for (int id = 0; id < count; id++) {
            if (refs[id] > 0) {
                out.putLong(priorities[id]);
            }
        }
        int offset = 0;
        out.putInt(0);
        for (int id = 0; id < count; id++) {
            if (refs[id] > 0) {
                offset += ends[id] - (id == 0 ? 0 : ends[id - 1]);
                out.putInt(offset);
            }
        }
        for (int id = 0; id < count; id++) {
            if (refs[id] > 0) {
                int start = id == 0 ? 0 : ends[id - 1];
                out.put(raw, start, ends[id] - start);
            }
        }
    }

    /** A deep copy (the heap state backend's copy-on-write). */
    SampleCandidates copy() {
        SampleCandidates c = new SampleCandidates(k);
        c.count = count;
        c.live = live;
        c.rows = rows.clone();
        c.priorities = priorities.clone();
        c.refs = refs.clone();
        c.ends = ends.clone();
        c.raw = Arrays.copyOf(raw, count == 0 ? 16 : Math.max(ends[count - 1], 16));
        c.all.copyFrom(all);
        c.byValue = new Heap[byValue.length][];
        for (int col = 0; col < byValue.length; col++) {
            c.byValue[col] = new Heap[byValue[col].length];
            for (int code = 0; code < byValue[col].length; code++) {
                if (byValue[col][code] != null) {
                    c.byValue[col][code] = new Heap(k);
                    c.byValue[col][code].copyFrom(byValue[col][code]);
                }
            }
        }
        return c;
    }

    /** A max-heap of at most k (priority, candidate) pairs: one group's smallest priorities. */
    private static final class Heap {
        final long[] prio;
        final int[] cand;
        int size;

        Heap(int k) {
            prio = new long[k];
            cand = new int[k];
        }

        boolean accepts(long p) {
            return size < prio.length || p < prio[0];
        }

        /** Adds (p, id); returns the candidate it pushed out, or -1. */
        int push(long p, int id) {
            if (size < prio.length) {
                int i = size++;
                while (i > 0 && prio[(i - 1) / 2] < p) {
                    int parent = (i - 1) / 2;
                    prio[i] = prio[parent];
                    cand[i] = cand[parent];
                    i = parent;
                }
                prio[i] = p;
                cand[i] = id;
                return -1;
            }
            int evicted = cand[0];
            int i = 0;
            while (true) {
                int child = 2 * i + 1;
                if (child >= size) {
                    break;
                }
                if (child + 1 < size && prio[child + 1] > prio[child]) {
                    child++;
                }
                if (prio[child] <= p) {
                    break;
                }
                prio[i] = prio[child];
                cand[i] = cand[child];
                i = child;
            }
            prio[i] = p;
            cand[i] = id;
            return evicted;
        }

        void renumber(int[] renumbered) {
            for (int i = 0; i < size; i++) {
                cand[i] = renumbered[cand[i]];
            }
        }

        void copyFrom(Heap h) {
            System.arraycopy(h.prio, 0, prio, 0, h.size);
            System.arraycopy(h.cand, 0, cand, 0, h.size);
            size = h.size;
        }
    }
}
