package io.emrfsroleagent.testing;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UnsupportedEncodingException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * An agent on a loopback port for the JVM clients' unit tests and benchmarks: answers each request as
 * {@link #answer} says for its {@code location} parameter (null when there is none), or as
 * {@link #answerQuery} says for all its parameters when set, after {@link #delayMs}; counts the requests and
 * keeps what each sent. Query values are decoded once, as form parameters, as the agent does.
 */
public final class FakeAgent implements AutoCloseable {
  /** One answer: HTTP status and JSON body. */
  public static final class Reply {
    public final int status;
    public final String body;

    public Reply(int status, String body) {
      this.status = status;
      this.body = body;
    }
  }

  private final HttpServer server;
  public final AtomicInteger requests = new AtomicInteger();
  /** The location of each request, in order. */
  public final List<String> locations = Collections.synchronizedList(new ArrayList<String>());
  /** The access of each request ({@code read}, {@code write}, null), in order. */
  public final List<String> accesses = Collections.synchronizedList(new ArrayList<String>());
  /** The raw query string of each request, in order. */
  public final List<String> rawQueries = Collections.synchronizedList(new ArrayList<String>());
  public volatile Function<String, Reply> answer;
  /** When set, answers instead of {@link #answer}, from every query parameter. */
  public volatile Function<Map<String, String>, Reply> answerQuery;
  public volatile long delayMs;
  public volatile Map<String, String> lastQuery = new HashMap<>();
  public volatile String lastRawQuery;
  public volatile String lastAuthorization;
  public volatile String lastPath;

  public FakeAgent(Function<String, Reply> answer) throws IOException {
    this.answer = answer;
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.setExecutor(Executors.newCachedThreadPool());
    server.createContext("/", this::handle);
    server.start();
  }

  /** An agent that answers 500 until told otherwise ({@link #reply}, {@link #answer}). */
  public FakeAgent() throws IOException {
    this(location -> new Reply(500, "{\"code\":\"NoAnswer\",\"message\":\"the test set no answer\"}"));
  }

  /** Forgets what earlier requests sent and answers 500 again, for a test that shares the agent with others. */
  public synchronized void reset() {
    requests.set(0);
    locations.clear();
    accesses.clear();
    rawQueries.clear();
    answerQuery = null;
    delayMs = 0;
    lastQuery = new HashMap<>();
    lastRawQuery = null;
    lastAuthorization = null;
    lastPath = null;
    reply(500, "{\"code\":\"NoAnswer\",\"message\":\"the test set no answer\"}");
  }

  /** Answers every request with this status and body from now on. */
  public void reply(int status, String body) {
    answer = location -> new Reply(status, body);
  }

  public String endpoint() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private void handle(HttpExchange exchange) throws IOException {
    requests.incrementAndGet();
    lastPath = exchange.getRequestURI().getPath();
    lastRawQuery = exchange.getRequestURI().getRawQuery();
    Map<String, String> query = parseQuery(lastRawQuery);
    lastQuery = query;
    lastAuthorization = exchange.getRequestHeaders().getFirst("Authorization");
    locations.add(query.get("location"));
    accesses.add(query.get("access"));
    rawQueries.add(String.valueOf(lastRawQuery));
    if (delayMs > 0) {
      try {
        Thread.sleep(delayMs);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    Function<Map<String, String>, Reply> byQuery = answerQuery;
    Reply reply = byQuery != null ? byQuery.apply(query) : answer.apply(query.get("location"));
    byte[] bytes = reply.body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", "application/json");
    try {
      exchange.sendResponseHeaders(reply.status, bytes.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(bytes);
      }
    } catch (IOException clientGone) {
      // A client that timed out has hung up before the answer.
    }
  }

  private static Map<String, String> parseQuery(String raw) throws UnsupportedEncodingException {
    Map<String, String> query = new HashMap<>();
    if (raw != null) {
      for (String pair : raw.split("&")) {
        int eq = pair.indexOf('=');
        String name = eq < 0 ? pair : pair.substring(0, eq);
        String value = eq < 0 ? "" : pair.substring(eq + 1);
        query.put(URLDecoder.decode(name, "UTF-8"), URLDecoder.decode(value, "UTF-8"));
      }
    }
    return query;
  }

  @Override
  public void close() {
    server.stop(0);
    ((ExecutorService) server.getExecutor()).shutdownNow();
  }
}
