// DynamoDB Local bound to one interface (loopback by default).
//
// DynamoDB Local has no host option: its Jetty server is built with `new Server(port)`, which
// listens on every interface. This launcher builds the server from the usual command line, sets
// the host of its connectors before starting it, and then runs it like ServerRunner does.
// Started as a single-file source program (`java -cp <jars> LoopbackDynamoDB.java <host> <args>`),
// so nothing has to be compiled at set-up. Telemetry is never configured (no network calls home).

import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import java.util.Arrays;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class LoopbackDynamoDB {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: LoopbackDynamoDB <host> [DynamoDB Local options]");
            System.exit(2);
        }
        String host = args[0];
        DynamoDBProxyServer proxy =
                ServerRunner.createServerFromCommandLineArgs(Arrays.copyOfRange(args, 1, args.length));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        int bound = 0;
        for (Connector connector : server.getConnectors()) {
            if (connector instanceof ServerConnector) {
                ((ServerConnector) connector).setHost(host);
                bound++;
            }
        }
        if (bound == 0) {
            System.err.println("DynamoDB Local has no network connector to bind to " + host);
            System.exit(1);
        }
        proxy.start();
        System.out.println("DynamoDB Local listening on " + host);
        proxy.join();
    }
}
