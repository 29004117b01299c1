package io.emrfsroleagent.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.URL;
import java.net.URLClassLoader;
import java.security.PrivilegedAction;
import java.util.function.Supplier;
import org.apache.hadoop.security.UserGroupInformation;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;

/**
 * {@link HadoopUser}: with real Hadoop on the class path, the calling thread's Hadoop user, found by reflection,
 * per call (inside {@code doAs} the impersonated user, outside it the login user); without Hadoop, no user.
 */
final class HadoopUserTest {

  @Test
  @DisplayName("the login user outside doAs, the doAs user inside")
  void loginUserAndDoAs() throws Exception {
    Supplier<String> user = HadoopUser.find(HadoopUserTest.class.getClassLoader());
    String login = UserGroupInformation.getLoginUser().getShortUserName();
    assertEquals(login, user.get(), "outside doAs");
    String inside = UserGroupInformation.createRemoteUser("alice@EXAMPLE.COM")
        .doAs((PrivilegedAction<String>) user::get);
    assertEquals("alice", inside, "inside doAs (short name)");
    assertEquals(login, user.get(), "outside again");
  }

  @Test
  @DisplayName("without Hadoop on the class path, no user (the agent takes the OS user)")
  void noHadoop() throws Exception {
    // A class loader that sees the JDK only, as the hooks' loader and the thread's do on a JVM without Hadoop.
    ClassLoader jdkOnly = new URLClassLoader(new URL[0], null);
    assertThrows(ClassNotFoundException.class, () -> Class.forName(HadoopUser.UGI, false, jdkOnly));
    Thread thread = Thread.currentThread();
    ClassLoader context = thread.getContextClassLoader();
    thread.setContextClassLoader(jdkOnly);
    try {
      assertNull(HadoopUser.find(jdkOnly).get(), "user");
    } finally {
      thread.setContextClassLoader(context);
    }
  }
}
