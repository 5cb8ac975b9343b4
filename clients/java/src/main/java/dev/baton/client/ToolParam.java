package dev.baton.client;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Describes a parameter of a worker tool for the language model: put it on a component of the
 * tool's argument record, e.g. {@code record Args(@ToolParam("The order number") String orderId)}.
 * It becomes the property's {@code description} in the JSON Schema.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.RECORD_COMPONENT)
public @interface ToolParam {
  String value();
}
