// What a JMS producer's 256-byte BytesMessage and a consumer's standard MessageAck look
// like on the wire under each OpenWire option pair, marshalled by ActiveMQ 5.17's own
// OpenWireFormat (version 12): loose or tight, marshalling cache off or on; two of each
// (the second once the ids and the destination are cached). Prints
// "<tight> <cache> <seq> <command> <hex>" per frame for bench/openwire/tight_cost.py.
import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.command.*;
import org.apache.activemq.util.ByteSequence;

public class WireSizes {
    static Object[] commands(int seq) throws Exception {
        ConnectionId conn = new ConnectionId("ID:bench-host-40923-1764870000000-1:1");
        SessionId sid = new SessionId(conn, 1);
        ProducerId pid = new ProducerId(sid, 1);
        ActiveMQBytesMessage m = new ActiveMQBytesMessage();
        m.setCommandId(seq);
        m.setProducerId(pid);
        m.setDestination(new ActiveMQQueue("owbench.queue"));
        m.setMessageId(new MessageId(pid, seq));
        m.setPersistent(false);
        m.setPriority((byte) 4);
        m.setTimestamp(1764870000123L + seq);
        m.writeBytes(new byte[256]);
        m.onSend();
        m.beforeMarshall(null);
        MessageAck ack = new MessageAck();
        ack.setCommandId(seq + 1);
        ack.setAckType((byte) 2);
        ack.setConsumerId(new ConsumerId(sid, 1));
        ack.setDestination(m.getDestination());
        MessageId id = new MessageId(pid, seq);
        id.setBrokerSequenceId(seq);
        ack.setFirstMessageId(id);
        ack.setLastMessageId(id);
        ack.setMessageCount(1);
        return new Object[] {m, ack};
    }

    public static void main(String[] a) throws Exception {
        for (boolean tight : new boolean[] {false, true}) {
            for (boolean cache : new boolean[] {false, true}) {
                OpenWireFormat f = new OpenWireFormat(12);
                f.setTightEncodingEnabled(tight);
                f.setCacheEnabled(cache);
                for (int seq = 1; seq <= 2; seq++) {
                    for (Object c : commands(seq * 10)) {
                        ByteSequence b = f.marshal(c);
                        StringBuilder sb = new StringBuilder();
                        for (int i = b.offset; i < b.offset + b.length; i++)
                            sb.append(String.format("%02x", b.data[i]));
                        System.out.println(tight + " " + cache + " " + seq + " " + c.getClass().getSimpleName() + " " + sb);
                    }
                }
            }
        }
    }
}
