package io.emrfsroleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.amazonaws.handlers.RequestHandler2;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;

/**
 * The SDKs' global hook lists in emrfs-role-agent-hooks.jar (clients/hooks) name hook classes of this jar that the
 * SDKs can load: public, of the SDK's hook type, with the public no-argument constructor the SDK calls.
 */
final class HookListsTest {

  @ParameterizedTest(name = "{0}")
  @CsvSource({
      "com/amazonaws/global/handlers/request.handler2s, v1",
      "software/amazon/awssdk/global/handlers/execution.interceptors, v2",
  })
  @DisplayName("each global list names one hook class of the provider jar, loadable by the SDK")
  void listNamesAHook(String list, String sdk) throws Exception {
    String hook = sdk.equals("v1") ? "io.emrfsroleagent.emrfs.RoleAgentGlobalRequestHandler"
        : "io.emrfsroleagent.sdk2.RoleAgentGlobalInterceptor";
    Path file = Paths.get(System.getProperty("basedir", "."), "hooks", "src", "main", "resources", list);
    List<String> names = new ArrayList<>();
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      if (!line.trim().isEmpty() && !line.trim().startsWith("#")) {
        names.add(line.trim());
      }
    }
    assertEquals(1, names.size(), "one class in " + file + ": " + names);
    assertEquals(hook, names.get(0), "the hook named");
    Class<?> c = Class.forName(names.get(0));
    Class<?> type = sdk.equals("v1") ? RequestHandler2.class : ExecutionInterceptor.class;
    assertTrue(type.isAssignableFrom(c), c + " is a " + type.getName());
    assertTrue(java.lang.reflect.Modifier.isPublic(c.getModifiers()), "public");
    assertTrue(java.lang.reflect.Modifier.isPublic(c.getConstructor().getModifiers()), "public no-arg constructor");
  }
}
