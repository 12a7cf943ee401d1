// JMS scenarios the OpenWire tests drive through the real ActiveMQ 5.17 client:
// `java Scenarios <broker url> <scenario> [args...]` prints one "key=value" line per
// observation for the test to check, and exits 0 unless the scenario threw.
import java.util.*;
import javax.jms.*;
import org.apache.activemq.ActiveMQConnectionFactory;
import org.apache.activemq.ActiveMQSession;

public class Scenarios {
    static String url;

    static Connection connect(String clientId) throws JMSException {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        Connection c = f.createConnection(System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        if (clientId != null) c.setClientID(clientId);
        c.start();
        return c;
    }

    static void out(String key, Object value) {
        System.out.println(key + "=" + value);
    }

    static String body(Message m) throws JMSException {
        if (m == null) return "null";
        if (m instanceof TextMessage) return ((TextMessage) m).getText();
        if (m instanceof BytesMessage) {
            BytesMessage b = (BytesMessage) m;
            byte[] data = new byte[(int) b.getBodyLength()];
            b.readBytes(data);
            return "bytes:" + Arrays.toString(data);
        }
        return m.getClass().getSimpleName();
    }

    public static void main(String[] args) throws Exception {
        url = args[0];
        String name = args[1];
        String q = args.length > 2 ? args[2] : "ow.test";
        switch (name) {
            case "roundtrip": roundtrip(q); break;
            case "send": send(q, Integer.parseInt(args[3]), args.length > 4 ? args[4] : "persistent"); break;
            case "receive": receive(q, Integer.parseInt(args[3])); break;
            case "client-ack": clientAck(q); break;
            case "individual-ack": individualAck(q); break;
            case "transactions": transactions(q); break;
            case "selector": selector(q); break;
            case "bad-selector": badSelector(q); break;
            case "durable": durable(q); break;
            case "request-reply": requestReply(q); break;
            case "prefetch0": prefetch0(q); break;
            case "login": login(); break;
            case "client-id-twice": clientIdTwice(); break;
            case "browse": browse(q); break;
            case "topic": topic(q); break;
            case "map": mapMessage(q); break;
            case "scheduled": scheduled(q); break;
            case "exclusive": exclusive(q); break;
            case "groups": groups(q); break;
            default: throw new IllegalArgumentException(name);
        }
    }

    static void roundtrip(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue(q));
        TextMessage t = s.createTextMessage("h\u00e9llo \u0000 \uD83D\uDE00");
        t.setIntProperty("i", 5);
        t.setLongProperty("l", 1L << 40);
        t.setStringProperty("s", "v");
        t.setBooleanProperty("b", true);
        t.setDoubleProperty("d", 1.5);
        t.setShortProperty("h", (short) 3);
        t.setJMSCorrelationID("corr-1");
        t.setJMSType("kind");
        t.setJMSPriority(7);
        p.send(t, DeliveryMode.PERSISTENT, 7, 0);
        BytesMessage b = s.createBytesMessage();
        b.writeBytes(new byte[] {1, 2, 3});
        p.send(b);
        out("sent-id", t.getJMSMessageID());
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        Message m = consumer.receive(5000);
        out("class", m.getClass().getSimpleName());
        out("text", body(m));
        out("id", m.getJMSMessageID());
        out("i", m.getObjectProperty("i").getClass().getSimpleName() + ":" + m.getIntProperty("i"));
        out("l", m.getObjectProperty("l").getClass().getSimpleName() + ":" + m.getLongProperty("l"));
        out("s", m.getStringProperty("s"));
        out("b", m.getBooleanProperty("b"));
        out("d", m.getDoubleProperty("d"));
        out("h", m.getObjectProperty("h").getClass().getSimpleName());
        out("correlation", m.getJMSCorrelationID());
        out("type", m.getJMSType());
        out("priority", m.getJMSPriority());
        out("persistent", m.getJMSDeliveryMode() == DeliveryMode.PERSISTENT);
        out("redelivered", m.getJMSRedelivered());
        Message m2 = consumer.receive(5000);
        out("class2", m2.getClass().getSimpleName());
        out("body2", body(m2));
        c.close();
    }

    static void send(String q, int n, String mode) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Destination d = q.startsWith("topic:") ? s.createTopic(q.substring(6)) : s.createQueue(q);
        MessageProducer p = s.createProducer(d);
        p.setDeliveryMode(mode.equals("persistent") ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
        for (int i = 0; i < n; i++) {
            TextMessage t = s.createTextMessage("m" + i);
            t.setIntProperty("n", i);
            p.send(t);
            // A synchronous (persistent) send returned: the broker answered it.
            out("acked", "m" + i);
        }
        c.close();
    }

    static void receive(String q, int n) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < n; i++) {
            Message m = consumer.receive(5000);
            out("got", body(m) + (m != null && m.getJMSRedelivered() ? "*" : ""));
        }
        c.close();
    }

    static void clientAck(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        Message last = null;
        for (int i = 0; i < 3; i++) {
            last = consumer.receive(5000);
            out("got", body(last));
        }
        // Not acknowledged: closing the connection gives all three back, redelivered.
        c.close();
        c = connect(null);
        s = c.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        consumer = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < 3; i++) {
            last = consumer.receive(5000);
            out("again", body(last) + ":" + last.getJMSRedelivered());
        }
        last.acknowledge();
        c.close();
        c = connect(null);
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        out("left", body(s.createConsumer(s.createQueue(q)).receive(500)));
        c.close();
    }

    static void individualAck(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, ActiveMQSession.INDIVIDUAL_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        Message a = consumer.receive(5000);
        Message b = consumer.receive(5000);
        Message d = consumer.receive(5000);
        b.acknowledge();
        out("acked", body(b));
        c.close();
        c = connect(null);
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        consumer = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < 3; i++) out("left", body(consumer.receive(i < 2 ? 5000 : 500)));
        c.close();
    }

    static void transactions(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(true, Session.SESSION_TRANSACTED);
        MessageProducer p = s.createProducer(s.createQueue(q));
        p.send(s.createTextMessage("rolled-back"));
        s.rollback();
        p.send(s.createTextMessage("committed"));
        s.commit();
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        Message m = consumer.receive(5000);
        out("first", body(m));
        s.rollback();
        m = consumer.receive(5000);
        out("after-rollback", body(m) + ":" + m.getJMSRedelivered());
        s.commit();
        out("after-commit", body(consumer.receive(500)));
        c.close();
    }

    static void selector(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue(q));
        for (int i = 0; i < 6; i++) {
            TextMessage t = s.createTextMessage("m" + i);
            t.setIntProperty("n", i);
            t.setStringProperty("color", i % 2 == 0 ? "red" : "blue");
            p.send(t);
        }
        MessageConsumer red = s.createConsumer(s.createQueue(q), "color = 'red' AND n > 0");
        for (int i = 0; i < 2; i++) out("red", body(red.receive(5000)));
        out("red", body(red.receive(300)));
        MessageConsumer rest = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < 4; i++) out("rest", body(rest.receive(5000)));
        c.close();
    }

    static void badSelector(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        try {
            s.createConsumer(s.createQueue(q), "color = ");
            out("error", "none");
        } catch (InvalidSelectorException e) {
            out("error", "InvalidSelectorException");
        }
        // The connection is still good.
        s.createProducer(s.createQueue(q)).send(s.createTextMessage("still-here"));
        out("after", body(s.createConsumer(s.createQueue(q)).receive(5000)));
        c.close();
    }

    static void durable(String t) throws Exception {
        Connection c = connect("ow-durable-client");
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic topic = s.createTopic(t);
        TopicSubscriber sub = s.createDurableSubscriber(topic, "sub1");
        sub.close();
        MessageProducer p = s.createProducer(topic);
        p.setDeliveryMode(DeliveryMode.PERSISTENT);
        p.send(s.createTextMessage("while-away"));
        c.close();
        c = connect("ow-durable-client");
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        sub = s.createDurableSubscriber(s.createTopic(t), "sub1");
        out("got", body(sub.receive(5000)));
        sub.close();
        s.unsubscribe("sub1");
        out("unsubscribed", true);
        c.close();
    }

    static void requestReply(String q) throws Exception {
        Connection c = connect(null);
        Session server = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer requests = server.createConsumer(server.createQueue(q));
        requests.setMessageListener(m -> {
            try {
                MessageProducer r = server.createProducer(m.getJMSReplyTo());
                TextMessage reply = server.createTextMessage("re:" + ((TextMessage) m).getText());
                reply.setJMSCorrelationID(m.getJMSMessageID());
                r.send(reply);
            } catch (JMSException e) {
                e.printStackTrace();
            }
        });
        Session client = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        TemporaryQueue replies = client.createTemporaryQueue();
        TextMessage req = client.createTextMessage("ping");
        req.setJMSReplyTo(replies);
        client.createProducer(client.createQueue(q)).send(req);
        Message reply = client.createConsumer(replies).receive(5000);
        out("reply", body(reply));
        out("correlated", reply != null && req.getJMSMessageID().equals(reply.getJMSCorrelationID()));
        c.close();
    }

    static void prefetch0(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        out("nowait-empty", body(consumer.receiveNoWait()));
        long start = System.currentTimeMillis();
        out("timeout-empty", body(consumer.receive(300)));
        out("waited", System.currentTimeMillis() - start >= 250);
        s.createProducer(s.createQueue(q)).send(s.createTextMessage("one"));
        s.createProducer(s.createQueue(q)).send(s.createTextMessage("two"));
        out("pulled", body(consumer.receive(5000)));
        // A second consumer gets the other: prefetch 0 took only one.
        MessageConsumer other = s.createConsumer(s.createQueue(q));
        out("other", body(other.receive(5000)));
        c.close();
    }

    static void login() throws Exception {
        Connection c = new ActiveMQConnectionFactory(url)
            .createConnection(System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        try {
            c.start();
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            s.createProducer(s.createQueue("ow.login")).send(s.createTextMessage("in"));
            out("connected", true);
        } catch (JMSSecurityException e) {
            out("error", "JMSSecurityException:" + e.getMessage());
        } finally {
            try { c.close(); } catch (JMSException e) { out("close", e.getClass().getSimpleName()); }
        }
    }

    static void clientIdTwice() throws Exception {
        Connection a = connect("ow-same-id");
        Connection b = new ActiveMQConnectionFactory(url).createConnection();
        try {
            b.setClientID("ow-same-id");
            out("second", "connected");
        } catch (InvalidClientIDException e) {
            out("second", "InvalidClientIDException");
        } finally {
            b.close();
        }
        Session s = a.createSession(false, Session.AUTO_ACKNOWLEDGE);
        s.createProducer(s.createQueue("ow.same")).send(s.createTextMessage("first-ok"));
        out("first", body(s.createConsumer(s.createQueue("ow.same")).receive(5000)));
        a.close();
    }

    static void browse(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue(q));
        for (int i = 0; i < 3; i++) p.send(s.createTextMessage("b" + i));
        QueueBrowser browser = s.createBrowser(s.createQueue(q));
        Enumeration<?> e = browser.getEnumeration();
        int n = 0;
        while (e.hasMoreElements()) {
            out("browsed", body((Message) e.nextElement()));
            n++;
        }
        browser.close();
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        for (int i = 0; i < 3; i++) out("consumed", body(consumer.receive(5000)));
        c.close();
    }

    static void mapMessage(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer p = s.createProducer(s.createQueue(q));
        MapMessage m = s.createMapMessage();
        m.setInt("a", 1);
        m.setString("b", "two");
        m.setBytes("c", new byte[] {3});
        p.send(m);
        StreamMessage st = s.createStreamMessage();
        st.writeString("x");
        st.writeLong(7L);
        p.send(st);
        // A String: the client refuses to deserialize classes it does not trust.
        ObjectMessage o = s.createObjectMessage("y-z");
        p.send(o);
        p.send(s.createMessage());
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        MapMessage gm = (MapMessage) consumer.receive(5000);
        out("map", gm.getInt("a") + "," + gm.getString("b") + "," + gm.getBytes("c")[0]);
        StreamMessage gs = (StreamMessage) consumer.receive(5000);
        out("stream", gs.readString() + "," + gs.readLong());
        ObjectMessage go = (ObjectMessage) consumer.receive(5000);
        out("object", go.getObject());
        Message plain = consumer.receive(5000);
        out("plain", plain.getClass().getSimpleName());
        c.close();
    }

    static void scheduled(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer consumer = s.createConsumer(s.createQueue(q));
        TextMessage t = s.createTextMessage("later");
        t.setLongProperty("AMQ_SCHEDULED_DELAY", 400);
        t.setLongProperty("AMQ_SCHEDULED_PERIOD", 100);
        t.setIntProperty("AMQ_SCHEDULED_REPEAT", 1);
        long start = System.currentTimeMillis();
        s.createProducer(s.createQueue(q)).send(t);
        out("early", body(consumer.receive(100)));
        out("first", body(consumer.receive(5000)));
        out("second", body(consumer.receive(5000)));
        out("delayed", System.currentTimeMillis() - start >= 400);
        out("third", body(consumer.receive(300)));
        c.close();
    }

    static void exclusive(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer plain = s.createConsumer(s.createQueue(q));
        MessageConsumer only = s.createConsumer(s.createQueue(q + "?consumer.exclusive=true"));
        MessageProducer p = s.createProducer(s.createQueue(q));
        for (int i = 0; i < 4; i++) p.send(s.createTextMessage("x" + i));
        for (int i = 0; i < 4; i++) out("exclusive", body(only.receive(5000)));
        out("plain", body(plain.receive(300)));
        c.close();
    }

    static void groups(String q) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer a = s.createConsumer(s.createQueue(q));
        MessageConsumer b = s.createConsumer(s.createQueue(q));
        MessageProducer p = s.createProducer(s.createQueue(q));
        for (int i = 0; i < 6; i++) {
            TextMessage t = s.createTextMessage((i % 2 == 0 ? "A" : "B") + i);
            t.setStringProperty("JMSXGroupID", i % 2 == 0 ? "gA" : "gB");
            p.send(t);
        }
        // Each group sticks to one consumer: what each got is one group's, in order.
        StringBuilder fromA = new StringBuilder(), fromB = new StringBuilder();
        for (int i = 0; i < 6; i++) {
            Message m = a.receive(200);
            if (m != null) fromA.append(body(m)).append(' ');
            m = b.receive(200);
            if (m != null) fromB.append(body(m)).append(' ');
        }
        out("a", fromA.toString().trim());
        out("b", fromB.toString().trim());
        c.close();
    }

    static void topic(String t) throws Exception {
        Connection c = connect(null);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer one = s.createConsumer(s.createTopic(t));
        MessageConsumer two = s.createConsumer(s.createTopic(t));
        s.createProducer(s.createTopic(t)).send(s.createTextMessage("fan"));
        out("one", body(one.receive(5000)));
        out("two", body(two.receive(5000)));
        c.close();
    }
}
