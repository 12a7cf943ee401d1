// A JMS application across a broker failover, driven by tests/cluster/test_openwire_failover.py:
// `java Failover <failover url> <queue> <topic> <client id>` runs, each on its own
// connection, a producer sending persistent text messages synchronously (one to the
// queue and one to the topic per number), a CLIENT_ACKNOWLEDGE queue consumer that
// acknowledges every message, and a durable topic subscriber (AUTO_ACKNOWLEDGE). It
// prints "sent=<n>" once both sends of n returned, "q=<n>:<redelivered>" and
// "t=<n>:<redelivered>" for each message received, until a line "stop" on stdin; then it
// stops sending, keeps receiving until every sent number arrived on both (or 20 s
// passed) plus a quiet second for late copies, prints "done", and exits.
import java.io.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.jms.*;
import org.apache.activemq.ActiveMQConnection;
import org.apache.activemq.ActiveMQConnectionFactory;

public class Failover {
    static final Object lock = new Object();

    static void out(String line) {
        synchronized (lock) {
            System.out.println(line);
            System.out.flush();
            lock.notifyAll(); // the main thread waits for receipts on this monitor
        }
    }

    static Connection connect(String url, String clientId) throws JMSException {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        ActiveMQConnection c = (ActiveMQConnection) f.createConnection();
        // The client's own duplicate filter would hide a message the broker stored twice
        // (it poison-acks a copy it has seen); off, the test sees every dispatch.
        c.setCheckForDuplicates(false);
        if (clientId != null) c.setClientID(clientId);
        c.start();
        return c;
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        String queue = args[1];
        String topic = args[2];
        String clientId = args[3];
        Set<Integer> sent = ConcurrentHashMap.newKeySet();
        Set<Integer> gotQ = ConcurrentHashMap.newKeySet();
        Set<Integer> gotT = ConcurrentHashMap.newKeySet();

        Connection cc = connect(url, null);
        Session cs = cc.createSession(false, Session.CLIENT_ACKNOWLEDGE);
        MessageConsumer qc = cs.createConsumer(cs.createQueue(queue));
        qc.setMessageListener(m -> {
            try {
                int n = m.getIntProperty("n");
                gotQ.add(n);
                out("q=" + n + ":" + m.getJMSRedelivered());
                m.acknowledge();
            } catch (JMSException e) {
                out("error=q " + e);
            }
        });

        Connection dc = connect(url, clientId);
        Session ds = dc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        Topic t = ds.createTopic(topic);
        MessageConsumer dcons = ds.createDurableSubscriber(t, "sub");
        dcons.setMessageListener(m -> {
            try {
                int n = m.getIntProperty("n");
                gotT.add(n);
                out("t=" + n + ":" + m.getJMSRedelivered());
            } catch (JMSException e) {
                out("error=t " + e);
            }
        });

        Connection pc = connect(url, null);
        Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        MessageProducer qp = ps.createProducer(ps.createQueue(queue));
        MessageProducer tp = ps.createProducer(ps.createTopic(topic));
        qp.setDeliveryMode(DeliveryMode.PERSISTENT);
        tp.setDeliveryMode(DeliveryMode.PERSISTENT);
        Thread producer = new Thread(() -> {
            int n = 0;
            try {
                while (!stop.get()) {
                    TextMessage m = ps.createTextMessage("m" + n);
                    m.setIntProperty("n", n);
                    qp.send(m);
                    TextMessage m2 = ps.createTextMessage("m" + n);
                    m2.setIntProperty("n", n);
                    tp.send(m2);
                    sent.add(n);
                    out("sent=" + n);
                    n++;
                }
            } catch (JMSException e) {
                out("error=producer " + e);
            }
        });
        out("ready=1");
        producer.start();

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null && !line.equals("stop")) {}
        stop.set(true);
        producer.join(30000);
        long deadline = System.currentTimeMillis() + 20000;
        synchronized (lock) {
            long left;
            while ((left = deadline - System.currentTimeMillis()) > 0
                    && !(gotQ.containsAll(sent) && gotT.containsAll(sent))) {
                lock.wait(left);
            }
        }
        Thread.sleep(1000); // late copies (a message stored twice) would show here
        out("done=" + sent.size());
        pc.close();
        cc.close();
        dc.close();
        System.exit(0);
    }

    static final AtomicBoolean stop = new AtomicBoolean();
}
