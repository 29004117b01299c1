package io.emrfsroleagent.e2e;

import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.file.DataFileStream;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.iceberg.DataFile;
import org.apache.iceberg.DataFiles;
import org.apache.iceberg.FileFormat;
import org.apache.iceberg.FileScanTask;
import org.apache.iceberg.PartitionSpec;
import org.apache.iceberg.Schema;
import org.apache.iceberg.Table;
import org.apache.iceberg.avro.Avro;
import org.apache.iceberg.avro.AvroSchemaUtil;
import org.apache.iceberg.avro.GenericAvroWriter;
import org.apache.iceberg.catalog.Namespace;
import org.apache.iceberg.catalog.TableIdentifier;
import org.apache.iceberg.jdbc.JdbcCatalog;
import org.apache.iceberg.io.CloseableIterable;
import org.apache.iceberg.io.FileAppender;
import org.apache.iceberg.io.OutputFile;
import org.apache.iceberg.types.Types;

/**
 * Iceberg tables on S3 through Iceberg's own {@code S3FileIO} (iceberg-aws, AWS SDK for Java v2), as a job
 * without Hadoop uses them: a JDBC catalog (SQLite) whose tables keep their metadata files (metadata JSON,
 * manifest lists, manifests) and data files (Avro) under the locations given, all written and read by S3FileIO.
 *
 * <pre>
 * IcebergRoundTrip S3_ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY JDBC_URI OP...
 *   table:NAME=LOCATION   create table db.NAME at LOCATION (s3://bucket/prefix), write a data file of three
 *                         rows, commit; load the table again, plan its files and read them back
 * </pre>
 *
 * S3FileIO's own credentials are the static keys given (s3.access-key-id / s3.secret-access-key). Prints
 * {@code OK OP rows=N files=N metadata=LOCATION} or {@code FAIL OP: exception}, then {@code DONE}.
 */
public final class IcebergRoundTrip {
  static final Schema SCHEMA = new Schema(
      Types.NestedField.required(1, "id", Types.IntegerType.get()),
      Types.NestedField.required(2, "data", Types.StringType.get()));

  public static void main(String[] args) throws Exception {
    Map<String, String> props = new HashMap<>();
    props.put("io-impl", "org.apache.iceberg.aws.s3.S3FileIO");
    props.put("s3.endpoint", args[0]);
    props.put("s3.path-style-access", "true");
    props.put("s3.access-key-id", args[1]);
    props.put("s3.secret-access-key", args[2]);
    props.put("client.region", "us-east-1");
    props.put("uri", args[3]);
    props.put("warehouse", "s3://unused-warehouse/");
    try (JdbcCatalog catalog = new JdbcCatalog()) {
      catalog.initialize("lake", props);
      catalog.createNamespace(Namespace.of("db"));
      for (int i = 4; i < args.length; i++) {
        String op = args[i];
        try {
          System.out.println("OK " + op + " " + run(catalog, op));
        } catch (Exception e) {
          System.out.println("FAIL " + op + ": " + SdkClientsSession.describe(e) + causes(e));
          e.printStackTrace(System.err);
        }
        System.out.flush();
      }
    }
    System.out.println("DONE");
  }

  static String run(JdbcCatalog catalog, String op) throws Exception {
    if (!op.startsWith("table:")) {
      throw new IllegalArgumentException("unknown operation " + op);
    }
    String arg = op.substring("table:".length());
    int eq = arg.indexOf('=');
    TableIdentifier id = TableIdentifier.of("db", arg.substring(0, eq));
    Table table = catalog.createTable(id, SCHEMA, PartitionSpec.unpartitioned(), arg.substring(eq + 1), null);

    OutputFile out = table.io().newOutputFile(table.locationProvider().newDataLocation("part-00000.avro"));
    org.apache.avro.Schema avro = AvroSchemaUtil.convert(SCHEMA, "row");
    FileAppender<GenericData.Record> appender =
        Avro.write(out).schema(SCHEMA).createWriterFunc(GenericAvroWriter::create).overwrite().build();
    try {
      for (int i = 0; i < 3; i++) {
        GenericData.Record row = new GenericData.Record(avro);
        row.put("id", i);
        row.put("data", "row " + i + " of " + id.name());
        appender.add(row);
      }
    } finally {
      appender.close();
    }
    DataFile file = DataFiles.builder(PartitionSpec.unpartitioned())
        .withPath(out.location())
        .withFormat(FileFormat.AVRO)
        .withFileSizeInBytes(appender.length())
        .withMetrics(appender.metrics())
        .build();
    table.newAppend().appendFile(file).commit();

    Table loaded = catalog.loadTable(id);
    List<String> rows = new ArrayList<>();
    int files = 0;
    try (CloseableIterable<FileScanTask> tasks = loaded.newScan().planFiles()) {
      for (FileScanTask task : tasks) {
        files++;
        try (InputStream in = loaded.io().newInputFile(task.file().location()).newStream();
            DataFileStream<GenericRecord> records = new DataFileStream<>(in, new GenericDatumReader<>())) {
          for (GenericRecord r : records) {
            rows.add(String.valueOf(r.get("data")));
          }
        }
      }
    }
    return "rows=" + rows.size() + " files=" + files + " metadata="
        + ((org.apache.iceberg.HasTableOperations) loaded).operations().current().metadataFileLocation();
  }

  private static String causes(Throwable e) {
    StringBuilder b = new StringBuilder();
    for (Throwable t = e.getCause(); t != null && t != t.getCause(); t = t.getCause()) {
      b.append(" | caused by ").append(t.toString().replace('\n', ' '));
    }
    return b.toString();
  }
}
