// OpenWire load with the real ActiveMQ JMS client: P producers and C consumers on one
// queue, N messages of S bytes, persistent or not, AUTO_ACKNOWLEDGE; prints
// "rate=<msgs/s> elapsed=<s>" measured from the first send to the last receive.
//   java JmsBench <url> <queue> <producers> <consumers> <messages> <size> <persistent|non>
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import javax.jms.*;
import org.apache.activemq.ActiveMQConnectionFactory;

public class JmsBench {
    public static void main(String[] a) throws Exception {
        String url = a[0], queue = a[1];
        int producers = Integer.parseInt(a[2]), consumers = Integer.parseInt(a[3]);
        int n = Integer.parseInt(a[4]), size = Integer.parseInt(a[5]);
        boolean persistent = a[6].equals("persistent");
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory(url);
        CountDownLatch done = new CountDownLatch(n);
        AtomicLong first = new AtomicLong();
        ExecutorService pool = Executors.newCachedThreadPool();
        Connection[] conns = new Connection[producers + consumers];
        for (int i = 0; i < consumers; i++) {
            Connection c = f.createConnection();
            conns[i] = c;
            c.start();
            Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
            MessageConsumer mc = s.createConsumer(s.createQueue(queue));
            mc.setMessageListener(m -> done.countDown());
        }
        byte[] body = new byte[size];
        int per = n / producers;
        long start = System.nanoTime();
        for (int i = 0; i < producers; i++) {
            Connection c = f.createConnection();
            conns[consumers + i] = c;
            c.start();
            int count = i == producers - 1 ? n - per * (producers - 1) : per;
            pool.submit(() -> {
                Session s = c.createSession(false, Session.AUTO_ACKNOWLEDGE);
                MessageProducer p = s.createProducer(s.createQueue(queue));
                p.setDeliveryMode(persistent ? DeliveryMode.PERSISTENT : DeliveryMode.NON_PERSISTENT);
                for (int k = 0; k < count; k++) {
                    BytesMessage m = s.createBytesMessage();
                    m.writeBytes(body);
                    p.send(m);
                }
                return null;
            });
        }
        boolean all = done.await(300, TimeUnit.SECONDS);
        double elapsed = (System.nanoTime() - start) / 1e9;
        System.out.println("rate=" + (long) ((n - done.getCount()) / elapsed) + " elapsed=" + elapsed
            + " complete=" + all);
        pool.shutdownNow();
        for (Connection c : conns) if (c != null) c.close();
        System.exit(0);
    }
}
