package dev.tributary.flink;

import java.io.IOException;
import org.apache.flink.api.common.typeutils.SimpleTypeSerializerSnapshot;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.core.memory.DataInputView;
import org.apache.flink.core.memory.DataOutputView;

/**
 * Checkpoints a window's {@link WindowColumns} as its packed form: a few bulk arrays per window,
 * where the row-based window state serialized every row. Stateless, so one snapshot class
 * restores it.
 */
public final class WindowColumnsSerializer extends TypeSerializer<WindowColumns> {

    private static final long serialVersionUID = 1L;

    @Override
    public boolean isImmutableType() {
        return false;
    }

    @Override
    public TypeSerializer<WindowColumns> duplicate() {
        return this;
    }

    @Override
    public WindowColumns createInstance() {
        return new WindowColumns();
    }

    @Override
    public WindowColumns copy(WindowColumns from) {
        return from.copy();
    }

    @Override
    public WindowColumns copy(WindowColumns from, WindowColumns reuse) {
        return copy(from);
    }

    @Override
    public int getLength() {
        return -1;
    }

    @Override
    public void serialize(WindowColumns record, DataOutputView target) throws IOException {
        byte[] packed = record.pack();
        target.writeInt(packed.length);
        target.write(packed);
    }

    @Override
    public WindowColumns deserialize(DataInputView source) throws IOException {
        byte[] packed = new byte[source.readInt()];
        source.readFully(packed);
        return WindowColumns.unpack(packed);
    }

    @Override
    public WindowColumns deserialize(WindowColumns reuse, DataInputView source) throws IOException {
        return deserialize(source);
    }

    @Override
    public void copy(DataInputView source, DataOutputView target) throws IOException {
        int length = source.readInt();
        target.writeInt(length);
        target.write(source, length);
    }

    @Override
    public boolean equals(Object obj) {
        return obj instanceof WindowColumnsSerializer;
    }

    @Override
    public int hashCode() {
        return WindowColumnsSerializer.class.hashCode();
    }

    @Override
    public TypeSerializerSnapshot<WindowColumns> snapshotConfiguration() {
        return new Snapshot();
    }

    /** Restores the (stateless) serializer. */
    public static final class Snapshot extends SimpleTypeSerializerSnapshot<WindowColumns> {
        public Snapshot() {
            super(WindowColumnsSerializer::new);
        }
    }
}
