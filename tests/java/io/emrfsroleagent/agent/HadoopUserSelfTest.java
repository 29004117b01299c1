package io.emrfsroleagent.agent;

import static io.emrfsroleagent.testing.SelfTest.check;
import static io.emrfsroleagent.testing.SelfTest.expectEquals;
import static io.emrfsroleagent.testing.SelfTest.finish;

import java.security.PrivilegedAction;
import java.util.function.Supplier;
import org.apache.hadoop.security.UserGroupInformation;

/**
 * {@link HadoopUser} with real Hadoop on the class path: the calling thread's Hadoop user, found by reflection,
 * per call (inside {@code doAs} the impersonated user, outside it the login user).
 */
public final class HadoopUserSelfTest {
  public static void main(String[] args) {
    check("the login user outside doAs, the doAs user inside", () -> {
      Supplier<String> user = HadoopUser.find(HadoopUserSelfTest.class.getClassLoader());
      String login = UserGroupInformation.getLoginUser().getShortUserName();
      expectEquals(login, user.get(), "outside doAs");
      String inside = UserGroupInformation.createRemoteUser("alice@EXAMPLE.COM")
          .doAs((PrivilegedAction<String>) user::get);
      expectEquals("alice", inside, "inside doAs (short name)");
      expectEquals(login, user.get(), "outside again");
    });
    finish();
  }
}
