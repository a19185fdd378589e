/** The JSON schema subset plugins use to describe their config (validated by ajv). */
export interface JsonSchemaObject {
  type: 'object';
  properties: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  description?: string;
}

export type JsonSchema = Record<string, unknown>;
