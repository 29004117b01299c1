package io.emrfsroleagent.agent;

import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.function.Supplier;

/**
 * Whose credentials a JVM-wide hook asks for: the calling thread's Hadoop user
 * ({@code UserGroupInformation.getCurrentUser().getShortUserName()}: in a YARN container the job's user, inside
 * {@code doAs} the impersonated one) when Hadoop is on the class path, found by reflection so that the hooks
 * need no Hadoop; else null, meaning the OS user of the process (the agent learns it from the kernel).
 *
 * <p>Each call costs what Hadoop's lookup costs, which grows with the depth of the calling thread's stack
 * ({@code AccessController.getContext()}); the hooks ask once per client ({@link ClientUser}).
 */
public final class HadoopUser implements Supplier<String> {
  static final String UGI = "org.apache.hadoop.security.UserGroupInformation";

  private final MethodHandle currentUser;
  private final MethodHandle shortName;

  private HadoopUser(MethodHandle currentUser, MethodHandle shortName) {
    this.currentUser = currentUser;
    this.shortName = shortName;
  }

  /**
   * The Hadoop user of the calling thread as {@link #get} answers it, or a supplier of null when {@code loader}
   * (and the context class loader) have no Hadoop; one that fails each call when that Hadoop has no
   * {@code getCurrentUser().getShortUserName()}.
   */
  public static Supplier<String> find(ClassLoader loader) {
    Class<?> ugi = load(loader);
    if (ugi == null) {
      ugi = load(Thread.currentThread().getContextClassLoader());
    }
    if (ugi == null) {
      return () -> null;
    }
    try {
      MethodHandles.Lookup lookup = MethodHandles.publicLookup();
      return new HadoopUser(
          lookup.findStatic(ugi, "getCurrentUser", MethodType.methodType(ugi))
              .asType(MethodType.methodType(Object.class)),
          lookup.findVirtual(ugi, "getShortUserName", MethodType.methodType(String.class))
              .asType(MethodType.methodType(String.class, Object.class)));
    } catch (ReflectiveOperationException e) {
      // Fail each request that needs the user, not the hooks' creation.
      AgentException unusable = new AgentException("emrfs-role-agent client cannot ask " + UGI
          + " on the class path for the Hadoop user: " + e, 0, null, null, e);
      return () -> {
        throw unusable;
      };
    }
  }

  private static Class<?> load(ClassLoader loader) {
    if (loader == null) {
      return null;
    }
    try {
      return Class.forName(UGI, true, loader);
    } catch (ClassNotFoundException | LinkageError e) {
      return null;
    }
  }

  /** The short name of the calling thread's Hadoop user; an {@link AgentException} when Hadoop cannot say. */
  @Override
  public String get() {
    try {
      Object user = (Object) currentUser.invokeExact();
      return (String) shortName.invokeExact(user);
    } catch (RuntimeException | Error e) {
      throw e;
    } catch (Throwable e) { // IOException from a failed login
      throw new AgentException("emrfs-role-agent client could not determine the Hadoop user: " + e, 0, null, null,
          e);
    }
  }

  @Override
  public String toString() {
    return "HadoopUser{" + UGI + "}";
  }
}
