// Durable subscribers on wildcard and composite topics through the real ActiveMQ 5.17
// JMS client: `java DurablePatterns <broker url> <scenario> <prefix>` prints one
// "key=value" line per observation and exits 0 unless the scenario threw. Its own file
// (Scenarios.java is another feature's).
import javax.jms.*;
import org.apache.activemq.ActiveMQConnectionFactory;

public class DurablePatterns {
    static String url;

    static Connection connect(String clientId) throws JMSException {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        Connection c = f.createConnection(System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        c.setClientID(clientId);
        c.start();
        return c;
    }

    static void out(String key, Object value) {
        System.out.println(key + "=" + value);
    }

    // Every message waiting for `sub` (the first within `first` ms, the rest come
    // prefetched), as body@topic.
    static void drain(String key, MessageConsumer sub, long first) throws JMSException {
        Message m = sub.receive(first);
        while (m != null) {
            String topic = ((Topic) m.getJMSDestination()).getTopicName();
            out(key, ((TextMessage) m).getText() + "@" + topic);
            m = sub.receive(500);
        }
    }

    public static void main(String[] args) throws Exception {
        url = args[0];
        String scenario = args[1];
        String p = args[2];
        if (!scenario.equals("away")) throw new IllegalArgumentException(scenario);
        String cid = "ow-dw-" + p;
        String wild = p + ".a.*";
        String comp = p + ".c.x," + p + ".c.*";
        Connection c = connect(cid);
        Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        s.createDurableSubscriber(s.createTopic(wild), "w").close();
        s.createDurableSubscriber(s.createTopic(comp), "c").close();
        MessageProducer prod = s.createProducer(null);
        prod.setDeliveryMode(DeliveryMode.PERSISTENT);
        String[] topics = {p + ".a.one", p + ".a.two", p + ".b.x", p + ".a.x.y", p + ".c.x", p + ".c.y"};
        for (String t : topics) prod.send(s.createTopic(t), s.createTextMessage("to-" + t.substring(p.length() + 1)));
        // A composite send: the composite subscriber covers both parts.
        prod.send(s.createTopic(p + ".c.x," + p + ".c.y"), s.createTextMessage("composite"));
        c.close();
        c = connect(cid);
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageConsumer w = s.createDurableSubscriber(s.createTopic(wild), "w");
        drain("w", w, 5000);
        w.close();
        MessageConsumer cs = s.createDurableSubscriber(s.createTopic(comp), "c");
        drain("c", cs, 5000);
        cs.close();
        // Back with another pattern under the same name: a new subscription.
        c.close();
        c = connect(cid);
        s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
        s.createDurableSubscriber(s.createTopic(wild), "w").close();
        prod = s.createProducer(s.createTopic(p + ".a.one"));
        prod.setDeliveryMode(DeliveryMode.PERSISTENT);
        prod.send(s.createTextMessage("stored"));
        MessageConsumer other = s.createDurableSubscriber(s.createTopic(p + ".a.>"), "w");
        drain("replaced", other, 1000);
        other.close();
        s.unsubscribe("w");
        s.unsubscribe("c");
        out("unsubscribed", true);
        c.close();
    }
}
