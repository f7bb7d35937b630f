// Partition.java - prints the partition Java's Kafka producer picks for keyed records (test oracle).
//
// Runs as a single-file source program on the Kafka client jars:
//   java -cp '<kafka libs>/*' Partition.java <num_partitions> <hex key>...
//   java -cp '<kafka libs>/*' Partition.java < lines      (stdin: "<num_partitions> <hex key>" per line)
// prints one partition per key, in order. An empty hex key ("" or a line with only
// the partition count) is the empty byte array, not a null key.
//
// It calls the producer's own code, BuiltInPartitioner.partitionForKey, which is what
// the default partitioner uses for records with a key:
// Utils.toPositive(Utils.murmur2(key)) % numPartitions.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class Partition {
    static byte[] unhex(String s) {
        if (s.length() % 2 != 0)
            throw new IllegalArgumentException("odd-length hex key: " + s);
        byte[] b = new byte[s.length() / 2];
        for (int i = 0; i < b.length; i++)
            b[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        return b;
    }

    public static void main(String[] args) throws Exception {
        PrintWriter out = new PrintWriter(System.out, false, StandardCharsets.US_ASCII);
        if (args.length >= 1) {
            int n = Integer.parseInt(args[0]);
            for (int i = 1; i < args.length; i++)
                out.println(BuiltInPartitioner.partitionForKey(unhex(args[i]), n));
        } else {
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
            String line;
            while ((line = in.readLine()) != null) {
                line = line.trim();
                if (line.isEmpty())
                    continue;
                String[] f = line.split("\\s+");
                int n = Integer.parseInt(f[0]);
                out.println(BuiltInPartitioner.partitionForKey(unhex(f.length > 1 ? f[1] : ""), n));
            }
        }
        out.flush();
    }
}
