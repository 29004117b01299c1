package io.emrfsroleagent.agent;

import java.util.function.Supplier;

/**
 * The user a JVM-wide hook asks for on behalf of one SDK client: the Hadoop user of the thread that built the
 * client ({@link HadoopUser}; null, the process's OS user, without Hadoop), fixed then, as S3A's hooks fix the
 * user that created the filesystem. Not looked up per request: Hadoop's {@code getCurrentUser()} walks the
 * calling thread's stack ({@code AccessController.getContext()}), 0.7 µs at 5 frames and 3.5 µs at 60 on the
 * development machine, and an S3 request's hooks run dozens of frames deep.
 *
 * <p>A failure to determine the user (a failed Hadoop login) does not stop the SDK from building the client:
 * each of its S3 requests fails with it instead.
 */
public final class ClientUser {
  private final String name;
  private final AgentException unknown;

  private ClientUser(String name, AgentException unknown) {
    this.name = name;
    this.unknown = unknown;
  }

  /** The user {@code current} names now, on the thread building the client. */
  public static ClientUser of(Supplier<String> current) {
    try {
      return new ClientUser(current.get(), null);
    } catch (AgentException e) {
      return new ClientUser(null, e);
    } catch (RuntimeException | LinkageError e) {
      return new ClientUser(null, new AgentException("emrfs-role-agent client could not determine the Hadoop user: "
          + e, 0, null, null, e));
    }
  }

  /** The user's name; null for the OS user. Throws the {@link AgentException} that kept it from being known. */
  public String name() {
    if (unknown != null) {
      throw new AgentException(unknown.getMessage(), unknown.status(), unknown.code(), null, null);
    }
    return name;
  }

  @Override
  public String toString() {
    return unknown != null ? "unknown user" : name == null ? "the OS user" : name;
  }
}
