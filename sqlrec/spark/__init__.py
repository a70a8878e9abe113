"""Apache Spark for sqlrec: training on a cluster (engine = 'spark_als') and batch scoring of
every user there (EXPORT RECOMMENDATIONS). pyspark is imported only when one of them runs."""
