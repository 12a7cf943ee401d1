// XA through the real ActiveMQ 5.17 JMS client (ActiveMQXAConnectionFactory):
// `java Xa <broker url> <queue>` prints, for each XAResource call, "call=ok" or
// "call=XAException:<errorCode>:<message>", and exits 0 unless something else threw.
import javax.jms.*;
import javax.transaction.xa.*;
import org.apache.activemq.ActiveMQXAConnectionFactory;

public class Xa {
    static void out(String key, Object value) {
        System.out.println(key + "=" + value);
    }

    static final class Id implements Xid {
        final byte[] gtrid;
        Id(String g) { gtrid = g.getBytes(); }
        public int getFormatId() { return 4242; }
        public byte[] getGlobalTransactionId() { return gtrid; }
        public byte[] getBranchQualifier() { return new byte[] {1}; }
    }

    interface Call { void run() throws Exception; }

    static void call(String name, Call c) throws Exception {
        try {
            c.run();
            out(name, "ok");
        } catch (XAException e) {
            out(name, "XAException:" + e.errorCode + ":" + e.getMessage());
        } catch (JMSException e) {
            out(name, e.getClass().getSimpleName() + ":" + e.getMessage());
        }
    }

    public static void main(String[] args) throws Exception {
        ActiveMQXAConnectionFactory f = new ActiveMQXAConnectionFactory(args[0]);
        XAConnection c = f.createXAConnection(System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        c.start();
        XASession s = c.createXASession();
        XAResource r = s.getXAResource();
        Id unknown = new Id("never-" + args[1]);
        call("commit-unknown", () -> r.commit(unknown, false));
        call("rollback-unknown", () -> r.rollback(unknown));
        Id xid = new Id("xa-" + args[1]);
        call("start", () -> r.start(xid, XAResource.TMNOFLAGS));
        call("send", () -> s.createProducer(s.createQueue(args[1])).send(s.createTextMessage("in-xa")));
        call("end", () -> r.end(xid, XAResource.TMSUCCESS));
        call("prepare", () -> { out("prepare-vote", r.prepare(xid)); });
        call("commit", () -> r.commit(xid, false));
        call("recover", () -> { out("recovered", r.recover(XAResource.TMSTARTRSCAN).length); });
        // The connection is still there after the refusals, and a plain one works.
        call("xa-close", () -> s.close());
        Connection pc = new org.apache.activemq.ActiveMQConnectionFactory(args[0]).createConnection(
            System.getenv("OW_USER"), System.getenv("OW_PASSWORD"));
        pc.start();
        Session plain = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
        plain.createProducer(plain.createQueue(args[1] + ".plain")).send(plain.createTextMessage("plain"));
        Message m = plain.createConsumer(plain.createQueue(args[1] + ".plain")).receive(5000);
        out("plain", m == null ? "null" : ((TextMessage) m).getText());
        pc.close();
        c.close();
    }
}
