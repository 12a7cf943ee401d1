import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.command.*;
import org.apache.activemq.util.ByteSequence;
// The same commands marshalled by ActiveMQ 5.17's OpenWireFormat twice: loose without the
// marshalling cache ("plain <hex>") and loose with it, one format for the whole sequence
// as one connection's ("cached <hex>"), so later frames refer to ids cached by earlier ones.
public class MarshalCached {
  public static void main(String[] a) throws Exception {
    OpenWireFormat plain = new OpenWireFormat(12);
    plain.setTightEncodingEnabled(false); plain.setCacheEnabled(false);
    OpenWireFormat cached = new OpenWireFormat(12);
    cached.setTightEncodingEnabled(false); cached.setCacheEnabled(true);
    ConnectionId conn = new ConnectionId("ID:host-1-2:1");
    SessionId sid = new SessionId(conn, 1);
    ProducerId pid = new ProducerId(sid, 3);
    ConsumerId cid = new ConsumerId(sid, 4);
    ActiveMQQueue q = new ActiveMQQueue("orders");
    java.util.List<Object> cs = new java.util.ArrayList<>();
    cs.add(new ConnectionInfo(conn));
    cs.add(new SessionInfo(sid));
    ProducerInfo pi = new ProducerInfo(pid); pi.setDestination(q); cs.add(pi);
    ConsumerInfo ci = new ConsumerInfo(cid); ci.setDestination(q); ci.setPrefetchSize(10); cs.add(ci);
    for (int seq = 1; seq <= 3; seq++) {
      ActiveMQBytesMessage m = new ActiveMQBytesMessage();
      m.setProducerId(pid); m.setDestination(q); m.setMessageId(new MessageId(pid, seq));
      m.setCommandId(10 + seq); m.writeBytes(new byte[] {1, 2, 3}); m.onSend();
      if (seq == 2) m.setTransactionId(new LocalTransactionId(conn, 7));
      m.beforeMarshall(null);
      cs.add(m);
      MessageAck ack = new MessageAck(); ack.setAckType((byte) 2); ack.setConsumerId(cid);
      ack.setDestination(q); ack.setFirstMessageId(m.getMessageId()); ack.setLastMessageId(m.getMessageId());
      ack.setMessageCount(1); cs.add(ack);
    }
    cs.add(new RemoveInfo(cid));
    for (OpenWireFormat f : new OpenWireFormat[] {plain, cached}) {
      for (Object c : cs) {
        ByteSequence b = f.marshal(c);
        StringBuilder sb = new StringBuilder();
        for (int i = b.offset; i < b.offset + b.length; i++) sb.append(String.format("%02x", b.data[i]));
        System.out.println((f == plain ? "plain " : "cached ") + sb);
      }
    }
  }
}
