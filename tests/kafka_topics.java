// Creates Kafka topics and waits until every partition has a leader: the tests' broker helper
// (tests/kafka_broker.py create_topics), run as a single-file program:
//   java -cp <kafka jars> tests/kafka_topics.java <bootstrap> <partitions> <topic>...
// Topics that already exist are left as they are.
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.TopicExistsException;

public class kafka_topics {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        int partitions = Integer.parseInt(args[1]);
        List<NewTopic> topics = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (int i = 2; i < args.length; i++) {
            topics.add(new NewTopic(args[i], partitions, (short) 1));
            names.add(args[i]);
        }
        try (Admin admin = Admin.create(props)) {
            try {
                admin.createTopics(topics).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) throw e;
            }
            long deadline = System.currentTimeMillis() + 60_000;
            while (true) {
                boolean ready = true;
                try {
                    for (TopicDescription d : admin.describeTopics(names).allTopicNames().get().values()) {
                        for (TopicPartitionInfo p : d.partitions()) {
                            if (p.leader() == null || p.leader().isEmpty()) ready = false;
                        }
                    }
                } catch (ExecutionException e) {
                    ready = false;
                }
                if (ready) break;
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("topics without leaders: " + names);
                Thread.sleep(100);
            }
        }
    }
}
