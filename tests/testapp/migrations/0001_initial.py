from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("reference", models.CharField(max_length=32)),
                ("status", models.CharField(default="new", max_length=16)),
                ("paid", models.BooleanField(default=False)),
                ("customer_profile", models.CharField(blank=True, max_length=64)),
                ("note", models.TextField(blank=True)),
            ],
        ),
    ]
