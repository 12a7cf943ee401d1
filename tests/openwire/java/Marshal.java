import org.apache.activemq.openwire.OpenWireFormat;
import org.apache.activemq.command.*;
import org.apache.activemq.util.ByteSequence;
import java.io.*;
// Marshals a set of commands with ActiveMQ 5.17's own OpenWireFormat (version 12, loose, no
// cache) and prints "<class> <hex>" per command: the codec tests decode and re-encode them.
public class Marshal {
  public static void main(String[] a) throws Exception {
    OpenWireFormat f = new OpenWireFormat(12);
    f.setTightEncodingEnabled(false); f.setCacheEnabled(false);
    ActiveMQTextMessage m = new ActiveMQTextMessage();
    m.setText("héllo \u0000 \uD83D\uDE00");
    m.setDestination(new ActiveMQQueue("orders"));
    ProducerId pid = new ProducerId(new SessionId(new ConnectionId("ID:host-1-2:1"), 1), 3);
    m.setProducerId(pid);
    m.setMessageId(new MessageId(pid, 7));
    m.setIntProperty("n", 5); m.setStringProperty("s", "x"); m.setBooleanProperty("b", true);
    m.setLongProperty("l", 1L<<40); m.setDoubleProperty("d", 1.5); m.setFloatProperty("f", 2.5f);
    m.setShortProperty("h", (short)3); m.setByteProperty("y", (byte)-2);
    m.setJMSCorrelationID("corr"); m.setPersistent(true); m.setPriority((byte)4); m.setTimestamp(1234);
    m.setReplyTo(new ActiveMQTempQueue("ID:tmp:1:1"));
    m.beforeMarshall(f);
    ConsumerInfo ci = new ConsumerInfo(new ConsumerId(new SessionId(new ConnectionId("ID:c"), 1), 2));
    ci.setDestination(new ActiveMQTopic("a.>")); ci.setSelector("x > 1"); ci.setPrefetchSize(1000);
    ci.setCommandId(9); ci.setResponseRequired(true);
    ConnectionInfo conn = new ConnectionInfo(new ConnectionId("ID:c")); conn.setClientId("cl"); conn.setUserName("u"); conn.setPassword("p");
    MessageAck ack = new MessageAck(); ack.setAckType((byte)2); ack.setConsumerId(ci.getConsumerId()); ack.setFirstMessageId(m.getMessageId()); ack.setLastMessageId(m.getMessageId()); ack.setMessageCount(1); ack.setDestination(m.getDestination());
    ExceptionResponse er = new ExceptionResponse(new javax.jms.InvalidSelectorException("bad")); er.setCorrelationId(9);
    WireFormatInfo wf = new WireFormatInfo(); wf.setVersion(12); wf.setCacheEnabled(true); wf.setMaxInactivityDuration(30000); wf.setTightEncodingEnabled(true); wf.setCacheSize(1024);
    MessageDispatch md = new MessageDispatch(); md.setConsumerId(ci.getConsumerId()); md.setDestination(m.getDestination()); md.setMessage(m); md.setRedeliveryCounter(0);
    Object[] cs = {wf, conn, ci, m, ack, er, md, new KeepAliveInfo(), new ShutdownInfo()};
    for (Object c : cs) {
      ByteSequence b = f.marshal(c);
      StringBuilder sb = new StringBuilder();
      for (int i = b.offset; i < b.offset + b.length; i++) sb.append(String.format("%02x", b.data[i]));
      System.out.println(c.getClass().getSimpleName() + " " + sb);
    }
  }
}
