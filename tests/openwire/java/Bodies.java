// Map, Stream and Object messages through the real ActiveMQ 5.17 JMS client, for
// consumers of other protocols: `java Bodies <broker url> send <queue>` sends one of
// each; `java Bodies <broker url> receive <queue> <n>` prints what n messages hold.
import java.util.*;
import javax.jms.*;
import org.apache.activemq.ActiveMQConnectionFactory;

public class Bodies {
    static void out(String key, Object value) {
        System.out.println(key + "=" + value);
    }

    static String typed(Object v) {
        if (v instanceof byte[]) return "bytes:" + Arrays.toString((byte[]) v);
        return v == null ? "null" : v.getClass().getSimpleName() + ":" + v;
    }

    public static void main(String[] args) throws Exception {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(args[0]);
        f.setTrustAllPackages(true);
        Connection c = f.createConnection(System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        c.start();
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        javax.jms.Queue q = s.createQueue(args[2]);
        if (args[1].equals("send")) {
            MessageProducer p = s.createProducer(q);
            MapMessage m = s.createMapMessage();
            m.setString("s", "v");
            m.setInt("i", 5);
            m.setLong("l", 1099511627776L);
            m.setBoolean("b", true);
            m.setDouble("d", 1.5);
            m.setBytes("bytes", new byte[] {1, 2});
            m.setStringProperty("kind", "map");
            p.send(m);
            StreamMessage st = s.createStreamMessage();
            st.writeString("a");
            st.writeInt(5);
            st.writeBoolean(true);
            st.writeBytes(new byte[] {3});
            st.setStringProperty("kind", "stream");
            p.send(st);
            ObjectMessage o = s.createObjectMessage(new ArrayList<>(List.of("x", "y")));
            o.setStringProperty("kind", "object");
            p.send(o);
        } else {
            MessageConsumer r = s.createConsumer(q);
            int n = Integer.parseInt(args[3]);
            for (int i = 0; i < n; i++) {
                Message m = r.receive(5000);
                if (m == null) { out("missing", i); break; }
                out("class", m.getClass().getSimpleName());
                if (m instanceof MapMessage) {
                    MapMessage mm = (MapMessage) m;
                    TreeSet<String> names = new TreeSet<>();
                    for (Enumeration<?> e = mm.getMapNames(); e.hasMoreElements();) names.add((String) e.nextElement());
                    for (String k : names) out("map." + k, typed(mm.getObject(k)));
                } else if (m instanceof StreamMessage) {
                    StreamMessage sm = (StreamMessage) m;
                    try {
                        while (true) out("item", typed(sm.readObject()));
                    } catch (MessageEOFException e) { out("end", "eof"); }
                } else if (m instanceof ObjectMessage) {
                    out("object", typed(((ObjectMessage) m).getObject()));
                } else if (m instanceof TextMessage) {
                    out("text", ((TextMessage) m).getText());
                } else if (m instanceof BytesMessage) {
                    BytesMessage bm = (BytesMessage) m;
                    byte[] b = new byte[(int) bm.getBodyLength()];
                    bm.readBytes(b);
                    out("bytes", Arrays.toString(b));
                }
            }
        }
        c.close();
    }
}
